/**
 * Revocation, enforced by every server: a set of revoked serial numbers kept
 * current (from the CA's own store, or by following the CA's CRL and
 * WatchRevocations feed), checked on every call, ending the open calls of a
 * certificate the moment it is revoked, and handed to TLS as a CRL so new
 * handshakes with it fail.
 */
import { backoffMs, sleep } from "./backoff.js";
import "reflect-metadata";
import { Code, type ConnectError, createClient, type Interceptor, type StreamRequest, type StreamResponse, type Transport } from "@connectrpc/connect";
import * as x509 from "@peculiar/x509";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { abortable } from "./abortable.js";
import { callerSerialKey } from "./peer.js";
import { rpcError } from "./errors.js";
import { normalizeSerial } from "./pki.js";
import type { Logger } from "./logger.js";

/** The revoked serials a server enforces, and the CRL it gives TLS. */
export class RevocationSet {
  readonly #revoked = new Set<string>();
  readonly #listeners = new Set<(serial: string) => void>();
  #crlPem: string | undefined;
  #crlListeners = new Set<(crlPem: string) => void>();

  isRevoked(serial: string | undefined): boolean {
    return serial !== undefined && this.#revoked.has(normalizeSerial(serial));
  }

  /** Marks a serial revoked and tells every listener (once per serial). */
  add(serial: string): void {
    const s = normalizeSerial(serial);
    if (this.#revoked.has(s)) return;
    this.#revoked.add(s);
    for (const listener of this.#listeners) listener(s);
  }

  get size(): number {
    return this.#revoked.size;
  }

  /** Calls `listener` with each newly revoked serial; returns an unsubscribe function. */
  onRevoked(listener: (serial: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The current CRL (PEM), once known. */
  get crlPem(): string | undefined {
    return this.#crlPem;
  }

  setCrl(crlPem: string): void {
    this.#crlPem = crlPem;
    for (const listener of this.#crlListeners) listener(crlPem);
  }

  onCrl(listener: (crlPem: string) => void): () => void {
    this.#crlListeners.add(listener);
    return () => this.#crlListeners.delete(listener);
  }
}

function revokedError(serial: string): ConnectError {
  return rpcError(
    Code.Unauthenticated,
    "lclstream.ca",
    "CERTIFICATE_REVOKED",
    `the client certificate ${serial} has been revoked; enroll again with a new token (\`lclstream enroll\`)`,
    { metadata: { serial_number: serial } },
  );
}

/**
 * Refuses calls whose caller certificate is revoked, and ends the open
 * streams of a certificate when it is revoked (both directions). A unary
 * call already running finishes: it is short, and a holder revoking its own
 * certificate gets its answer. Runs after authentication, which resolves the
 * caller's serial.
 */
export function createRevocationInterceptor(revocations: RevocationSet): Interceptor {
  const open = new Map<string, Set<AbortController>>();
  revocations.onRevoked((serial) => {
    for (const call of open.get(serial) ?? []) call.abort(revokedError(serial));
  });
  return (next) => async (req) => {
    const serial = req.contextValues.get(callerSerialKey);
    if (serial === undefined) return next(req);
    if (revocations.isRevoked(serial)) throw revokedError(serial);
    if (!req.stream && req.method.methodKind === "unary") return next(req);
    const call = new AbortController();
    const calls = open.get(serial) ?? new Set();
    open.set(serial, calls.add(call));
    const forget = () => {
      calls.delete(call);
      if (calls.size === 0) open.delete(serial);
    };
    try {
      const request = req.stream ? ({ ...req, message: cutOff(req.message, call.signal, () => undefined) } as StreamRequest) : req;
      const res = await abortable(next(request), call.signal);
      if (!res.stream) {
        forget(); // a client stream, answered
        return res;
      }
      return { ...res, message: cutOff(res.message, call.signal, forget) } as StreamResponse;
    } catch (error) {
      forget();
      throw error;
    }
  };
}

/** Re-yields a stream until `signal` aborts, then throws its reason. */
async function* cutOff<T>(messages: AsyncIterable<T>, signal: AbortSignal, done: () => void): AsyncGenerator<T> {
  const it = messages[Symbol.asyncIterator]();
  let ended = false;
  try {
    for (;;) {
      const r = await abortable(it.next(), signal);
      if (r.done) {
        ended = true;
        return;
      }
      yield r.value;
    }
  } finally {
    done();
    // However this ends (revoked, or the caller stopped reading: a client gone while the server
    // waited on flow control), the inner stream is closed too, so its cleanup runs.
    if (!ended) void it.return?.();
  }
}

/** Options of {@link followRevocations}. */
export interface FollowRevocationsOptions {
  /** A transport to the CA's mTLS listener. */
  transport: Transport;
  /** The CA certificate that must have signed the CRL. */
  caCertificatePem: string;
  logger: Logger;
  /** Stops following when aborted. */
  signal: AbortSignal;
  /** Delay before reconnecting after the feed breaks; default 1 s, doubling to 30 s. */
  retryMs?: number;
}

/**
 * Loads the CA's CRL (verifying its signature), then follows
 * WatchRevocations, reconnecting when the feed breaks. Resolves once the CRL
 * is loaded, so a server never serves without knowing what is revoked.
 */
export async function followRevocations(options: FollowRevocationsOptions): Promise<RevocationSet> {
  const set = new RevocationSet();
  const client = createClient(CertificateAuthorityService, options.transport);
  const caCertificate = new x509.X509Certificate(options.caCertificatePem);

  const loadCrl = async (): Promise<bigint> => {
    const res = await client.getRevocationList({}, { signal: options.signal });
    const crl = new x509.X509Crl(res.crlPem);
    if (!(await crl.verify({ publicKey: caCertificate }))) {
      throw new Error("the CA's CRL is not signed by the trusted CA certificate");
    }
    for (const entry of crl.entries) set.add(entry.serialNumber);
    set.setCrl(res.crlPem);
    return res.crlNumber;
  };

  let after = await loadCrl();
  void (async () => {
    const initialMs = options.retryMs ?? 1000;
    let attempt = 0;
    while (!options.signal.aborted) {
      try {
        for await (const res of client.watchRevocations({ afterSequence: after }, { signal: options.signal })) {
          const r = res.revocation;
          if (!r) continue;
          set.add(r.serialNumber);
          after = r.sequence;
          attempt = 0;
          // The CRL handed to TLS lags a revocation by one fetch; calls are refused at once.
          after = await loadCrl().catch(() => after);
        }
      } catch (error) {
        if (options.signal.aborted) return;
        options.logger.warn({ err: error }, `revocation feed broke; reconnecting in ${backoffMs(attempt, initialMs, 30_000)} ms`);
      }
      await sleep(backoffMs(attempt++, initialMs, 30_000), undefined, true);
      after = await loadCrl().catch(() => after);
    }
  })();
  return set;
}
