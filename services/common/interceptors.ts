/**
 * The interceptors every server runs, outermost first: telemetry (one log line
 * and metrics per call), error mapping (unknown errors become INTERNAL with
 * the cause kept for the log), authentication (resolves the caller).
 */
import { Code, ConnectError, createContextKey, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import type { Logger } from "pino";
import { parseIdentity, type Identity } from "./identity.js";
import { X509Certificate } from "node:crypto";
import { normalizeSerial } from "./pki.js";
import { callerKey, callerSerialKey, tlsPeerKey } from "./peer.js";
import { parseXfcc, xfccHeader } from "./xfcc.js";
import { rpcError, runtimeDomain } from "./errors.js";
import type { RpcMetrics } from "./metrics.js";

/** The procedure path of a method, `/package.Service/Method`. */
export function procedureOf(method: { parent: { typeName: string }; name: string }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** Options of {@link createAuthInterceptor}. */
export interface AuthOptions {
  trustDomain: string;
  /** The front proxy's identity URI; only it may send x-forwarded-client-cert. */
  proxyIdentity?: string;
  /** Procedures callable without a client certificate (the enrollment path). */
  publicProcedures: ReadonlySet<string>;
}

/**
 * Resolves the caller: the direct TLS peer, or, when the direct peer is the
 * front proxy, the client named in x-forwarded-client-cert. Anyone else sending
 * that header is refused: it would let a client claim another identity.
 */
export function createAuthInterceptor(options: AuthOptions): Interceptor {
  return (next) => async (req) => {
    const peer = req.contextValues.get(tlsPeerKey);
    let caller: Identity | undefined = peer?.identity;
    let serial = peer?.serialNumber;
    const forwarded = req.header.get(xfccHeader);
    if (forwarded !== null) {
      if (!options.proxyIdentity || caller?.uri !== options.proxyIdentity) {
        throw rpcError(
          Code.PermissionDenied,
          runtimeDomain,
          "FORWARDED_IDENTITY_REFUSED",
          `${xfccHeader} is accepted only from the front proxy; ${caller?.uri ?? "an anonymous peer"} may not send it. Remove the header, or connect through the front door`,
          { metadata: { peer: caller?.uri ?? "" } },
        );
      }
      ({ caller, serial } = forwardedClient(forwarded, options.trustDomain));
    }
    if (!caller && !options.publicProcedures.has(procedureOf(req.method))) {
      const names = forwarded === null ? peer?.namesWithoutIdentity : undefined;
      if (names) {
        throw rpcError(
          Code.Unauthenticated,
          runtimeDomain,
          "CERTIFICATE_WITHOUT_IDENTITY",
          `${procedureOf(req.method)} needs a user or service identity (spiffe://${options.trustDomain}/user/NAME) in the client certificate, and this one names only ${names}: use a certificate from \`lclstream enroll\` (--cert-dir)`,
          { metadata: { certificate_names: names } },
        );
      }
      throw rpcError(
        Code.Unauthenticated,
        runtimeDomain,
        "CLIENT_CERTIFICATE_REQUIRED",
        `${procedureOf(req.method)} needs a client certificate with an identity in ${options.trustDomain}: enroll with \`lclstream enroll\` and pass --cert-dir`,
      );
    }
    req.contextValues.set(callerKey, caller);
    req.contextValues.set(callerSerialKey, caller ? serial : undefined);
    return next(req);
  };
}

/** The identity (and certificate serial) of the client the proxy added last. */
function forwardedClient(header: string, trustDomain: string): { caller?: Identity; serial?: string } {
  let elements;
  try {
    elements = parseXfcc(header);
  } catch (error) {
    throw rpcError(
      Code.PermissionDenied,
      runtimeDomain,
      "FORWARDED_IDENTITY_MALFORMED",
      `the front proxy sent a malformed ${xfccHeader}: ${(error as Error).message}`,
    );
  }
  // The proxy appends its client's element, so the last one is what it verified.
  const element = elements.at(-1) ?? {};
  const identities = (element.URI ?? []).map(parseIdentity).filter((id) => id?.trustDomain === trustDomain);
  if (identities.length !== 1) return {};
  return { caller: identities[0], serial: serialOfForwardedCert(element.Cert?.[0]) };
}

/** The serial of a URL-encoded PEM certificate, as Envoy forwards it in `Cert`. */
function serialOfForwardedCert(cert: string | undefined): string | undefined {
  if (!cert) return undefined;
  try {
    return normalizeSerial(new X509Certificate(decodeURIComponent(cert)).serialNumber);
  } catch {
    return undefined;
  }
}

/** Maps any error to a ConnectError; unknown ones become INTERNAL with the cause kept. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

/** Unknown errors become INTERNAL with a generic message; the original stays as `cause`. */
export const errorMappingInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) return res;
    return { ...res, message: mapErrors(res.message, () => undefined) } as StreamResponse;
  } catch (error) {
    throw toConnectError(error);
  }
};

/** Re-yields a stream, mapping its error and reporting how it ended. */
async function* mapErrors<T>(messages: AsyncIterable<T>, onEnd: (error: ConnectError | undefined) => void, onMessage?: () => void): AsyncGenerator<T> {
  let failure: ConnectError | undefined;
  try {
    for await (const message of messages) {
      onMessage?.();
      yield message;
    }
  } catch (error) {
    failure = toConnectError(error);
    throw failure;
  } finally {
    onEnd(failure);
  }
}

/** Whether a call failed only because its HTTP/2 stream was gone when the server wrote to it. */
function callerGone(error: ConnectError): boolean {
  const cause = error.cause as { code?: unknown } | undefined;
  return error.code === Code.Internal && (cause?.code === "ERR_HTTP2_INVALID_STREAM" || cause?.code === "ERR_STREAM_DESTROYED");
}

/**
 * Set by a handler for a call that, when it succeeds, is logged at debug, not
 * info: an Ack, or a producer asking where it stands. A consumer acknowledges
 * and a rank asks dozens of times a second; the metrics count them all.
 */
export const routineCall = createContextKey(false, { description: "a call whose success is logged at debug" });

/** One log line and the RPC metrics per call; bodies are never logged. */
export function createTelemetryInterceptor(logger: Logger, metrics: RpcMetrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const service = req.service.typeName;
    const method = req.method.name;
    metrics.started(service, method);
    const finish = (error: ConnectError | undefined) => {
      // A stream closed without error after the call's signal aborted was cut short; one whose
      // response could not be written because the caller had gone was cancelled by the caller.
      const reason =
        !error && req.signal.aborted
          ? ConnectError.from(req.signal.reason)
          : error && callerGone(error)
            ? new ConnectError("the caller went away", Code.Canceled, undefined, undefined, error)
            : error;
      const code = reason ? Code[reason.code] : "OK";
      const durationMs = performance.now() - started;
      metrics.finished(service, method, code, durationMs / 1000);
      const caller = req.contextValues.get(callerKey)?.uri ?? req.contextValues.get(tlsPeerKey)?.identity?.uri;
      const fields = { service, method, code, durationMs: Math.round(durationMs * 10) / 10, caller };
      if (!reason) {
        if (req.contextValues.get(routineCall)) logger.debug(fields, "call finished");
        else logger.info(fields, "call finished");
      } else if (reason.code === Code.Canceled || reason.code === Code.DeadlineExceeded) logger.info(fields, "call cancelled");
      else if (reason.code === Code.Internal || reason.code === Code.Unknown || reason.code === Code.DataLoss)
        logger.error({ ...fields, err: reason.cause ?? reason }, reason.message);
      else logger.warn({ ...fields, reason: reason.rawMessage }, "call failed");
    };
    let res;
    try {
      res = await next(req);
    } catch (error) {
      finish(toConnectError(error));
      throw error;
    }
    if (!res.stream) {
      finish(undefined);
      return res;
    }
    return { ...res, message: mapErrors(res.message, finish, () => metrics.sent(service, method)) } as StreamResponse;
  };
}
