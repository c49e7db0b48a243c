/**
 * Who is calling: the direct TLS peer of a connection, and the caller an RPC
 * acts for (the same, or the client behind the front proxy, from
 * `x-forwarded-client-cert`).
 */
import { X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { identityFromSubjectAltName, type Identity } from "./identity.js";
import { rpcError, runtimeDomain } from "./errors.js";
import { normalizeSerial } from "./pki.js";

/** The certificate a TLS peer presented, reduced to what authorization needs. */
export interface TlsPeer {
  /** Its lclstream identity; undefined when it presented no certificate. */
  identity: Identity | undefined;
  /**
   * The names (subjectAltName) of a valid certificate that carries no
   * identity in the trust domain (a host's DNS-only certificate), to say so.
   */
  namesWithoutIdentity?: string;
  /** Serial number of its certificate, lower-case hex. */
  serialNumber: string | undefined;
  /** Remote address, for the log. */
  address: string | undefined;
}

/** The direct TLS peer of the connection a call arrived on. */
export const tlsPeerKey = createContextKey<TlsPeer | undefined>(undefined, { description: "direct TLS peer" });

/** The identity a call acts for, resolved by the authentication interceptor. */
export const callerKey = createContextKey<Identity | undefined>(undefined, { description: "caller identity" });

/**
 * Serial number (lower-case hex) of the caller's certificate, when known: the
 * direct peer's, or the one the proxy forwarded in the header's `Cert` field.
 */
export const callerSerialKey = createContextKey<string | undefined>(undefined, { description: "caller certificate serial" });

const peers = new WeakMap<object, TlsPeer>();

/**
 * Reads the peer of a TLS socket once per connection (`connection` is the
 * cache key: HTTP/2 hands each request its own proxy of the socket, so pass
 * the session).
 */
export function tlsPeerOf(socket: TLSSocket, trustDomain: string, connection: object = socket): TlsPeer {
  const cached = peers.get(connection);
  if (cached) return cached;
  const cert = socket.getPeerCertificate?.();
  const hasCert = cert && Object.keys(cert).length > 0 && socket.authorized;
  const peer = peerOf(hasCert ? cert : undefined, trustDomain, socket.remoteAddress);
  peers.set(connection, peer);
  return peer;
}

/**
 * The peer of a connection whose TLS handshake verified `certificate`
 * (DER) elsewhere: the native module's (native-server.ts).
 */
export function tlsPeerOfCertificate(certificate: Uint8Array, trustDomain: string, address: string | undefined): TlsPeer {
  const cert = new X509Certificate(certificate);
  return peerOf({ subjectaltname: cert.subjectAltName ?? "", serialNumber: cert.serialNumber }, trustDomain, address);
}

function peerOf(cert: { subjectaltname?: string; serialNumber: string } | undefined, trustDomain: string, address: string | undefined): TlsPeer {
  const identity = cert ? identityFromSubjectAltName(cert.subjectaltname, trustDomain) : undefined;
  return {
    identity,
    namesWithoutIdentity: cert && !identity ? cert.subjectaltname || "no subjectAltName" : undefined,
    serialNumber: cert ? normalizeSerial(cert.serialNumber) : undefined,
    address,
  };
}

/** The serial number of the caller's certificate, if known. */
export function callerSerialOf(ctx: HandlerContext): string | undefined {
  return ctx.values.get(callerSerialKey);
}

/**
 * The identity the call acts for. Throws UNAUTHENTICATED when there is none
 * (only possible on a listener that does not require client certificates).
 */
export function callerOf(ctx: HandlerContext): Identity {
  const caller = ctx.values.get(callerKey);
  if (!caller) {
    throw rpcError(
      Code.Unauthenticated,
      runtimeDomain,
      "CLIENT_CERTIFICATE_REQUIRED",
      "this call needs a client certificate from the lclstream CA: enroll with `lclstream enroll` and pass --cert-dir",
    );
  }
  return caller;
}
