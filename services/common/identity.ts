/**
 * Identities are SPIFFE IDs carried as URI SANs in X.509 certificates:
 * `spiffe://<trust-domain>/user/<name>` or `spiffe://<trust-domain>/service/<name>`.
 */
import { invalidArgument } from "./errors.js";

/** The two kinds of principal lclstream knows. */
export type IdentityKind = "user" | "service";

/** A parsed, validated identity. */
export interface Identity {
  /** The full SPIFFE URI, as it appears in the certificate. */
  readonly uri: string;
  readonly trustDomain: string;
  readonly kind: IdentityKind;
  readonly name: string;
}

const trustDomainPattern = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const namePattern = /^[a-z0-9]([a-z0-9._-]{0,62})$/;

/** True when `domain` can be a trust domain (lower-case DNS-like name). */
export function isValidTrustDomain(domain: string): boolean {
  return trustDomainPattern.test(domain);
}

/** Parses a SPIFFE URI; undefined when it is not an lclstream identity. */
export function parseIdentity(uri: string): Identity | undefined {
  const match = /^spiffe:\/\/([^/]+)\/(user|service)\/([^/]+)$/.exec(uri);
  if (!match) return undefined;
  const [, trustDomain, kind, name] = match as unknown as [string, string, IdentityKind, string];
  if (!isValidTrustDomain(trustDomain) || !namePattern.test(name)) return undefined;
  return { uri, trustDomain, kind, name };
}

/**
 * Resolves `user/alice`, `service/buffer` or a full URI to an identity in
 * `trustDomain`. Throws with a message that says what a valid identity is.
 */
export function resolveIdentity(text: string, trustDomain: string): Identity {
  const uri = text.startsWith("spiffe://") ? text : `spiffe://${trustDomain}/${text}`;
  const identity = parseIdentity(uri);
  if (!identity) {
    throw new Error(
      `"${text}" is not a valid identity: use user/NAME or service/NAME (lower-case letters, digits, '.', '_', '-', at most 63 characters) or spiffe://DOMAIN/user/NAME`,
    );
  }
  if (identity.trustDomain !== trustDomain) {
    throw new Error(`identity ${uri} is outside the trust domain ${trustDomain}`);
  }
  return identity;
}

/** {@link resolveIdentity} for a request field: a bad identity is INVALID_ARGUMENT naming `field`. */
export function resolveIdentityField(text: string, trustDomain: string, domain: string, field: string): Identity {
  try {
    return resolveIdentity(text, trustDomain);
  } catch (error) {
    throw invalidArgument(domain, [{ field, description: (error as Error).message }]);
  }
}

/** Builds the SPIFFE URI of an identity. */
export function identityUri(trustDomain: string, kind: IdentityKind, name: string): string {
  const uri = `spiffe://${trustDomain}/${kind}/${name}`;
  if (!parseIdentity(uri)) throw new Error(`invalid identity ${uri}`);
  return uri;
}

/**
 * Finds the lclstream identity among the URI SANs of a certificate, in Node's
 * `subjectaltname` form (`DNS:a, URI:spiffe://d/user/x, IP Address:1.2.3.4`).
 * Returns undefined when there is none in `trustDomain` or more than one.
 */
export function identityFromSubjectAltName(subjectAltName: string | undefined, trustDomain: string): Identity | undefined {
  if (!subjectAltName) return undefined;
  const found = subjectAltName
    .split(/,\s*/)
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => parseIdentity(entry.slice(4)))
    .filter((id): id is Identity => id !== undefined && id.trustDomain === trustDomain);
  return found.length === 1 ? found[0] : undefined;
}
