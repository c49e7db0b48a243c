/**
 * The enrolling side (`lclstream enroll`): with nothing but a token and the
 * enrollment URL, get a certificate. The token pins the CA by fingerprint, so
 * the trust bundle fetched over an unverified connection is checked before
 * anything secret is sent.
 */
import { createHash, X509Certificate } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { createMeshTransport } from "../common/client.js";
import { createCsr, generateKeyPair, privateKeyToPem, type CertMaterial, type KeyType } from "../common/pki.js";
import { resolveIdentity } from "../common/identity.js";

/** Options of {@link enroll}. */
export interface EnrollOptions {
  /** The CA's enrollment endpoint, `https://host:port`. */
  enrollUrl: string;
  /** The token from `lclstream ca token create`. */
  token: string;
  /** The identity the token was made for; when omitted the CA fills it in from the token. */
  identity?: string;
  keyType?: KeyType;
  dnsNames?: string[];
  ipAddresses?: string[];
}

/** Fetches and pins the CA, makes a key pair and CSR, and enrolls. */
export async function enroll(options: EnrollOptions): Promise<CertMaterial> {
  const pinned = /^lcls1\.[A-Za-z0-9_-]{43}\.([0-9a-f]{64})$/.exec(options.token.trim())?.[1];
  if (!pinned) throw new Error("that is not an lclstream enrollment token (it starts with lcls1.); ask an admin for one");

  // Unverified on purpose: the token's fingerprint verifies what comes back.
  const bootstrap = createClient(CertificateAuthorityService, createGrpcTransport({ baseUrl: options.enrollUrl, nodeOptions: { rejectUnauthorized: false } }));
  const bundle = await bootstrap.getTrustBundle({});
  const caPem = bundle.caCertificatesPem.find((pem) => createHash("sha256").update(new X509Certificate(pem).raw).digest("hex") === pinned);
  if (!caPem) {
    throw new Error(`the server at ${options.enrollUrl} does not hold the CA this token was made by; check the URL`);
  }

  const identity = options.identity ? resolveIdentity(options.identity, bundle.trustDomain).uri : undefined;
  const keyType = options.keyType ?? "p256";
  const keys = await generateKeyPair(keyType);
  const csrPem = await createCsr(keys, keyType, identity, options.dnsNames, options.ipAddresses);
  const ca = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: options.enrollUrl, tls: { caPem } }));
  const res = await ca.enroll({ token: options.token.trim(), csrPem });
  return { caPem, certPem: res.certificateChainPem, keyPem: await privateKeyToPem(keys.privateKey) };
}
