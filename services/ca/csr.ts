/**
 * Checks a PKCS#10 certificate signing request before the CA signs anything:
 * it must parse, be signed by its own key, use ECDSA P-256 or Ed25519, and not
 * ask to be a CA. Returns the key and the names it asks for.
 */
import "reflect-metadata";
import { Code } from "@connectrpc/connect";
import * as x509 from "@peculiar/x509";
import { rpcError } from "../common/errors.js";
import type { KeyType } from "../common/pki.js";

export const caDomain = "lclstream.ca";

/** The most a CSR may weigh: a P-256 CSR with a few names is under 1 KiB. */
const maxCsrBytes = 16 * 1024;
const maxNames = 32;

/** What a valid CSR asks for. */
export interface CsrRequest {
  publicKey: CryptoKey;
  keyType: KeyType;
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
}

function refuse(reason: string, message: string) {
  return rpcError(Code.InvalidArgument, caDomain, reason, message, { violations: [{ field: "csr_pem", description: message }] });
}

/** Validates a CSR; throws INVALID_ARGUMENT with a reason when it is not acceptable. */
export async function inspectCsr(pem: string): Promise<CsrRequest> {
  if (!pem.trim()) throw refuse("CSR_MISSING", "a PEM-encoded PKCS#10 certificate signing request is required");
  if (pem.length > maxCsrBytes) throw refuse("CSR_TOO_LARGE", `the CSR is ${pem.length} bytes; at most ${maxCsrBytes} are accepted`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (error) {
    throw refuse("CSR_MALFORMED", `the CSR does not parse as PKCS#10 (${(error as Error).message}); create one with \`lclstream enroll\` or openssl req`);
  }
  const algorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
  let keyType: KeyType;
  if (algorithm.name === "ECDSA" && algorithm.namedCurve === "P-256") keyType = "p256";
  else if (algorithm.name === "Ed25519") keyType = "ed25519";
  else
    throw refuse(
      "CSR_UNSUPPORTED_KEY",
      `keys of type ${algorithm.name}${algorithm.namedCurve ? ` ${algorithm.namedCurve}` : ""} are not accepted; use ECDSA P-256 or Ed25519`,
    );

  let signed = false;
  try {
    signed = await csr.verify();
  } catch {
    signed = false;
  }
  if (!signed) throw refuse("CSR_BAD_SIGNATURE", "the CSR's signature does not verify with its own public key: it was altered or is corrupt");

  const constraints = csr.getExtension("2.5.29.19") as x509.BasicConstraintsExtension | null;
  if (constraints?.ca)
    throw refuse("CSR_CA_REQUESTED", "the CSR asks for a CA certificate (basicConstraints CA:TRUE); lclstream issues only leaf certificates");

  const san = csr.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension | null;
  const names = san?.names.toJSON() ?? [];
  if (names.length > maxNames) throw refuse("CSR_TOO_MANY_NAMES", `the CSR asks for ${names.length} names; at most ${maxNames} are accepted`);
  const of = (type: string) => names.filter((n) => n.type === type).map((n) => n.value);
  const other = names.filter((n) => !["url", "dns", "ip"].includes(n.type));
  if (other.length)
    throw refuse("CSR_UNSUPPORTED_NAME", `the CSR asks for names of type ${other.map((n) => n.type).join(", ")}; only URI, DNS and IP names are issued`);

  const publicKey = await csr.publicKey.export(keyType === "p256" ? { name: "ECDSA", namedCurve: "P-256" } : { name: "Ed25519" }, ["verify"]);
  return { publicKey, keyType, uris: of("url"), dnsNames: of("dns"), ipAddresses: of("ip") };
}
