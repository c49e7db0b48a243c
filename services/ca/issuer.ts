/** Signs leaf certificates for the CA and describes them as audit records. */
import { issueCertificate, type CertificateAuthority, type KeyType } from "../common/pki.js";
import { parseIdentity } from "../common/identity.js";
import type { CertificateRecord, Issuance } from "./ca-store.js";

const hour = 60 * 60 * 1000;

/** Certificate lifetimes, by identity kind. */
export interface Lifetimes {
  userMs: number;
  serviceMs: number;
}

/** Short by default: users renew daily, services weekly. */
export const defaultLifetimes: Lifetimes = { userMs: 24 * hour, serviceMs: 7 * 24 * hour };

/** What to sign. */
export interface SignRequest {
  identity: string;
  dnsNames: string[];
  ipAddresses: string[];
  issuance: Issuance;
  requester: string;
  /** The holder's key; when absent one is generated and returned (offline issue only). */
  publicKey?: CryptoKey;
  keyType?: KeyType;
  lifetimeMs?: number;
}

/** Signs a certificate; the caller records it. */
export async function signLeaf(
  ca: CertificateAuthority,
  lifetimes: Lifetimes,
  request: SignRequest,
  now: number,
): Promise<{ record: CertificateRecord; privateKeyPem?: string }> {
  const identity = parseIdentity(request.identity);
  if (!identity) throw new Error(`invalid identity ${request.identity}`);
  const lifetimeMs = request.lifetimeMs ?? (identity.kind === "user" ? lifetimes.userMs : lifetimes.serviceMs);
  const issued = await issueCertificate(ca, {
    identity: request.identity,
    dnsNames: request.dnsNames,
    ipAddresses: request.ipAddresses,
    lifetimeMs,
    publicKey: request.publicKey,
    keyType: request.keyType,
  });
  const record: CertificateRecord = {
    serialNumber: issued.serialNumber,
    identity: request.identity,
    dnsNames: request.dnsNames,
    ipAddresses: request.ipAddresses,
    keyType: request.keyType ?? "p256",
    notBefore: issued.certificate.notBefore.getTime(),
    notAfter: issued.certificate.notAfter.getTime(),
    issuance: request.issuance,
    requester: request.requester,
    certificatePem: issued.certificatePem,
    createTime: now,
  };
  return { record, privateKeyPem: issued.privateKeyPem };
}
