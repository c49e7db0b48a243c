/**
 * A small X.509 toolkit on @peculiar/x509: make a CA, issue leaf certificates
 * carrying an lclstream identity, read and write cert directories. Fast enough
 * that every test file gets its own real PKI.
 */
import "reflect-metadata";
import { createPublicKey, webcrypto, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { parseIdentity } from "./identity.js";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Key algorithms lclstream certifies. */
export type KeyType = "p256" | "ed25519";

const keyAlgorithms: Record<KeyType, (EcKeyGenParams & { hash?: string }) | Algorithm> = {
  p256: { name: "ECDSA", namedCurve: "P-256" } as EcKeyGenParams,
  ed25519: { name: "Ed25519" },
};

/** The signature algorithm for a key type. */
export function signingAlgorithm(keyType: KeyType): Algorithm {
  return keyType === "p256" ? ({ name: "ECDSA", hash: "SHA-256" } as EcdsaParams) : { name: "Ed25519" };
}

/** Generates a key pair of the given type (extractable, for PEM export). */
export async function generateKeyPair(keyType: KeyType = "p256"): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(keyAlgorithms[keyType], true, ["sign", "verify"])) as CryptoKeyPair;
}

/** Exports a private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

/** Imports a PKCS#8 PEM private key of the given type. */
export async function privateKeyFromPem(pem: string, keyType: KeyType): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey("pkcs8", der, keyAlgorithms[keyType], true, ["sign"]);
}

/** A random positive 128-bit serial number, lower-case hex. */
/**
 * A serial number in its one canonical form: lower-case hex of the DER
 * integer's bytes without leading zero bytes, as `openssl x509 -serial`
 * prints it (ignoring case). Every comparison of serials goes through this.
 */
export function normalizeSerial(serial: string): string {
  const hex = serial
    .toLowerCase()
    .replace(/[^0-9a-f]/g, "")
    .replace(/^0+/, "");
  return hex.length % 2 ? `0${hex}` : hex || "00";
}

export function randomSerialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive, and no leading zero byte to strip
  return Buffer.from(bytes).toString("hex");
}

/** A certificate authority held in memory. */
export interface CertificateAuthority {
  readonly certificate: x509.X509Certificate;
  readonly certificatePem: string;
  readonly keys: CryptoKeyPair;
  readonly keyType: KeyType;
  readonly trustDomain: string;
}

/** Options for {@link createCertificateAuthority}. */
export interface CreateCaOptions {
  trustDomain: string;
  keyType?: KeyType;
  /** Validity of the root; default 10 years. */
  lifetimeMs?: number;
  commonName?: string;
}

const day = 24 * 60 * 60 * 1000;
/** Backdating absorbs clock skew between hosts. */
const clockSkewMs = 5 * 60 * 1000;

/** Creates a self-signed root CA. */
export async function createCertificateAuthority(options: CreateCaOptions): Promise<CertificateAuthority> {
  const keyType = options.keyType ?? "p256";
  const keys = await generateKeyPair(keyType);
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: `CN=${options.commonName ?? `lclstream CA ${options.trustDomain}`}, O=lclstream`,
    notBefore: new Date(now - clockSkewMs),
    notAfter: new Date(now + (options.lifetimeMs ?? 3650 * day)),
    signingAlgorithm: signingAlgorithm(keyType),
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate, certificatePem: certificate.toString("pem"), keys, keyType, trustDomain: options.trustDomain };
}

/** Loads a CA from its certificate and key PEM. */
export async function loadCertificateAuthority(certificatePem: string, keyPem: string, trustDomain: string): Promise<CertificateAuthority> {
  const certificate = new x509.X509Certificate(certificatePem);
  const keyType: KeyType = certificate.publicKey.algorithm.name === "Ed25519" ? "ed25519" : "p256";
  const privateKey = await privateKeyFromPem(keyPem, keyType);
  const publicKey = await certificate.publicKey.export();
  return { certificate, certificatePem, keys: { privateKey, publicKey }, keyType, trustDomain };
}

/** What a leaf certificate certifies. */
export interface LeafRequest {
  /** The SPIFFE URI of the holder. */
  identity: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Validity; default 24 hours. */
  lifetimeMs?: number;
  /** The holder's public key; when absent a key pair is generated. */
  publicKey?: CryptoKey;
  keyType?: KeyType;
  serialNumber?: string;
}

/** An issued leaf certificate, with its key when the helper generated it. */
export interface IssuedCertificate {
  certificate: x509.X509Certificate;
  certificatePem: string;
  serialNumber: string;
  /** Present when the key pair was generated here. */
  privateKeyPem?: string;
}

/**
 * Issues a leaf certificate: the identity as URI SAN, optional DNS and IP
 * SANs. Services both serve and call (EKU serverAuth + clientAuth); users
 * only call (clientAuth), so a user certificate cannot pose as a server.
 */
export async function issueCertificate(ca: CertificateAuthority, request: LeafRequest): Promise<IssuedCertificate> {
  let publicKey = request.publicKey;
  let privateKeyPem: string | undefined;
  if (!publicKey) {
    const keys = await generateKeyPair(request.keyType ?? "p256");
    publicKey = keys.publicKey;
    privateKeyPem = await privateKeyToPem(keys.privateKey);
  }
  const serialNumber = request.serialNumber ?? randomSerialNumber();
  const names: x509.JsonGeneralNames = [
    { type: "url", value: request.identity },
    ...(request.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(request.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `CN=${request.identity.split("/").pop()}, O=lclstream`,
    issuer: ca.certificate.subject,
    notBefore: new Date(now - clockSkewMs),
    notAfter: new Date(now + (request.lifetimeMs ?? day)),
    signingAlgorithm: signingAlgorithm(ca.keyType),
    signingKey: ca.keys.privateKey,
    publicKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        parseIdentity(request.identity)?.kind === "user"
          ? [x509.ExtendedKeyUsage.clientAuth]
          : [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth],
      ),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return { certificate, certificatePem: certificate.toString("pem"), serialNumber, privateKeyPem };
}

/** The TLS material of one party: its chain, key and the CAs it trusts. */
export interface CertMaterial {
  /** PEM of the trusted CA certificates. */
  caPem: string;
  /** PEM of the leaf certificate (then intermediates). */
  certPem: string;
  /** PEM of the private key. */
  keyPem: string;
}

/** File names inside a cert directory. */
export const certDirFiles = { ca: "ca.crt", cert: "tls.crt", key: "tls.key" } as const;

/** Writes a cert directory: `ca.crt`, `tls.crt`, and `tls.key` with mode 0600. */
export async function writeCertDir(dir: string, material: CertMaterial): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Each file whole or not at all (written aside, then renamed over); readCertDir waits out the moment between key and certificate.
  const put = async (name: string, text: string, mode = 0o644) => {
    const aside = join(dir, `.${name}.${process.pid}.tmp`);
    await writeFile(aside, text, { mode });
    await chmod(aside, mode);
    await rename(aside, join(dir, name));
  };
  await put(certDirFiles.ca, material.caPem);
  await put(certDirFiles.key, material.keyPem, 0o600);
  await put(certDirFiles.cert, material.certPem);
}

/** True when the certificate certifies the private key (the same public key). */
function keyMatches(certPem: string, keyPem: string): boolean {
  try {
    const fromCert = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
    return fromCert.equals(createPublicKey(keyPem).export({ type: "spki", format: "der" }));
  } catch {
    return false;
  }
}

/**
 * Reads a cert directory written by {@link writeCertDir} or `lclstream enroll`.
 * A key and certificate that do not belong together (read while a renewal
 * replaced them) are read again, for up to a second, before it gives up.
 */
export async function readCertDir(dir: string): Promise<CertMaterial> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name), "utf8");
    } catch (error) {
      throw new Error(
        `cannot read ${name} in cert directory ${dir}: ${(error as Error).message}; a cert directory holds ca.crt, tls.crt and tls.key (see certs/README.md)`,
      );
    }
  };
  for (let attempt = 0; ; attempt++) {
    const material = { caPem: await read(certDirFiles.ca), certPem: await read(certDirFiles.cert), keyPem: await read(certDirFiles.key) };
    if (keyMatches(material.certPem, material.keyPem)) return material;
    if (attempt === 20) {
      throw new Error(`${dir}: tls.key is not the key of tls.crt; write both from the same enrollment or renewal (lclstream enroll, lclstream renew)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Convenience for tests and bootstrapping: a CA plus material for one identity. */
export async function issueMaterial(ca: CertificateAuthority, request: LeafRequest): Promise<CertMaterial> {
  const issued = await issueCertificate(ca, request);
  if (!issued.privateKeyPem) throw new Error("issueMaterial generates the key; do not pass publicKey");
  return { caPem: ca.certificatePem, certPem: issued.certificatePem, keyPem: issued.privateKeyPem };
}

/**
 * Makes a CSR for a key pair (what `lclstream enroll` and `renew` send). With
 * no identity the CA certifies the one its enrollment token was made for.
 */
export async function createCsr(
  keys: CryptoKeyPair,
  keyType: KeyType,
  identity: string | undefined,
  dnsNames: string[] = [],
  ipAddresses: string[] = [],
): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${identity?.split("/").pop() ?? "lclstream enrollee"}`,
    keys,
    signingAlgorithm: signingAlgorithm(keyType),
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        ...(identity ? [{ type: "url" as const, value: identity }] : []),
        ...dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...ipAddresses.map((value) => ({ type: "ip" as const, value })),
      ]),
    ],
  });
  return csr.toString("pem");
}
