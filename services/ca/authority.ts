/**
 * The CA's key material on disk, under `<state-dir>/ca/`: `ca.crt`, `ca.key`
 * (mode 0600) and `ca.json` (the trust domain). Also signs CRLs.
 */
import "reflect-metadata";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import {
  createCertificateAuthority,
  loadCertificateAuthority,
  privateKeyToPem,
  signingAlgorithm,
  type CertificateAuthority,
  type KeyType,
} from "../common/pki.js";
import { isValidTrustDomain } from "../common/identity.js";
import type { RevocationRecord } from "./ca-store.js";

/** Paths of the CA's files in a state directory. */
export function caPaths(stateDir: string) {
  const dir = join(stateDir, "ca");
  return {
    dir,
    certificate: join(dir, "ca.crt"),
    key: join(dir, "ca.key"),
    config: join(dir, "ca.json"),
    database: join(dir, "ca.db"),
  };
}

/** Creates a new root CA in `stateDir`; refuses to overwrite one. */
export async function initAuthority(stateDir: string, trustDomain: string, keyType: KeyType = "p256"): Promise<CertificateAuthority> {
  if (!isValidTrustDomain(trustDomain)) {
    throw new Error(`"${trustDomain}" is not a valid trust domain: use a lower-case DNS-like name such as lcls.example.org`);
  }
  const paths = caPaths(stateDir);
  if (existsSync(paths.key)) {
    throw new Error(`a CA already exists in ${paths.dir}; it is never overwritten (move it away to start over)`);
  }
  const ca = await createCertificateAuthority({ trustDomain, keyType });
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await writeFile(paths.key, await privateKeyToPem(ca.keys.privateKey), { mode: 0o600 });
  await chmod(paths.key, 0o600);
  await writeFile(paths.certificate, ca.certificatePem);
  await writeFile(paths.config, `${JSON.stringify({ trustDomain }, null, 2)}\n`);
  return ca;
}

/** Loads the CA from `stateDir`, with a clear error when there is none. */
export async function loadAuthority(stateDir: string): Promise<CertificateAuthority> {
  const paths = caPaths(stateDir);
  if (!existsSync(paths.key)) {
    throw new Error(`no CA in ${paths.dir}: create one with \`lclstream ca init --state-dir ${stateDir}\``);
  }
  const { trustDomain } = JSON.parse(await readFile(paths.config, "utf8")) as { trustDomain: string };
  return loadCertificateAuthority(await readFile(paths.certificate, "utf8"), await readFile(paths.key, "utf8"), trustDomain);
}

/** SHA-256 of the CA certificate's DER, lower-case hex: what enrollment tokens pin. */
export function caFingerprint(ca: CertificateAuthority): string {
  return createHash("sha256").update(Buffer.from(ca.certificate.rawData)).digest("hex");
}

/** DER of an INTEGER, for the CRL number extension. */
function derInteger(value: number): ArrayBuffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, "hex");
  return new Uint8Array([0x02, body.length, ...body]).buffer;
}

/** Signs a CRL listing `revocations`; its CRL number is the newest revocation's sequence. */
export async function signCrl(ca: CertificateAuthority, revocations: RevocationRecord[], now: Date, validityMs: number): Promise<x509.X509Crl> {
  const crlNumber = revocations.reduce((max, r) => Math.max(max, r.sequence), 0);
  return x509.X509CrlGenerator.create({
    issuer: ca.certificate.subject,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + validityMs),
    signingAlgorithm: signingAlgorithm(ca.keyType),
    signingKey: ca.keys.privateKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.certificate), new x509.Extension("2.5.29.20", false, derInteger(crlNumber))],
    entries: revocations.map((r) => ({
      serialNumber: r.serialNumber,
      revocationDate: new Date(r.revokeTime),
      reason: r.reason as x509.X509CrlReason,
    })),
  });
}

/** PEM of a CRL under the `X509 CRL` label that OpenSSL (and so Node's TLS) requires. */
export function crlToPem(crl: x509.X509Crl): string {
  return x509.PemConverter.encode(crl.rawData, "X509 CRL");
}
