/**
 * Clients of lclstream services: a gRPC transport over HTTP/2 with mutual TLS
 * from a cert directory, with the same data-path settings as the servers.
 */
import type * as http2 from "node:http2";
import { Code, ConnectError, createContextKey, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { borrowedResponses, createDirectStreamCall, createDirectUnaryCall } from "./direct-transport.js";
import { readCertDir, type CertMaterial } from "./pki.js";
import { dataPathProcedures } from "./data-path.js";
import { closedUnansweredCode, createNativeStreamCall, nativeStreamModule } from "./native-stream.js";
import { procedureOf } from "./interceptors.js";

export { borrowedResponses } from "./direct-transport.js";

/**
 * Set in a Publish call's `contextValues` by a producer sending batches on
 * it: with the native module built, the call gets a connection of its own on
 * the module's thread, which frames and encrypts the batches without
 * JavaScript (see native-stream.ts). A short Publish (asking where a rank
 * stands) leaves it unset and shares the client's HTTP/2 session.
 */
export const publishedBatches = createContextKey(false, { description: "a Publish call carrying batches" });

const MiB = 1024 * 1024;

/** Options of {@link createMeshTransport}. */
export interface MeshTransportOptions {
  /** The server, `https://host:port`. */
  baseUrl: string;
  /** This client's certificate, key and trusted CAs; omit only for the enrollment path. */
  tls: CertMaterial | Pick<CertMaterial, "caPem">;
  /** TLS server name to verify when it differs from the URL's host (for example a service DNS name). */
  serverName?: string;
  /** Largest message sent or accepted, in bytes; default 64 MiB like the servers. */
  maxMessageBytes?: number;
  /** HTTP/2 stream flow-control window, in bytes; default 8 MiB. */
  http2WindowBytes?: number;
  /**
   * Read the data path's server streams (Subscribe), and send a producer's
   * Publish (see publishedBatches), with the native module when it is built
   * (default true; LCLSTREAM_NATIVE=0 turns it off for the whole process).
   */
  native?: boolean;
}

/**
 * An HTTP/2 session manager that also widens each connection's receive
 * window (node leaves it at 64 KiB whatever the stream windows are, which
 * caps a large server stream at one window per round trip).
 */
function windowedSessionManager(baseUrl: string, sessionOptions: http2.SecureClientSessionOptions, connectionWindowBytes: number) {
  const inner = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000 }, sessionOptions);
  const seen = new WeakSet<http2.ClientHttp2Session>();
  const manager = {
    authority: inner.authority,
    /**
     * When a connection last closed before the server answered anything on
     * it: a TLS 1.3 server refuses a revoked, expired or foreign client
     * certificate only after the handshake, by closing the socket without an
     * alert, and the calls then end as bare stream resets.
     */
    closedUnansweredAt: 0,
    async request(...args: Parameters<Http2SessionManager["request"]>) {
      const stream = await inner.request(...args);
      const session = stream.session as http2.ClientHttp2Session | undefined;
      if (session && !seen.has(session)) {
        seen.add(session);
        session.setLocalWindowSize(connectionWindowBytes);
        // Refused in milliseconds; a connection that lived longer was answered (its SETTINGS may predate this listener).
        const openedAt = Date.now();
        let answered = false;
        session.once("remoteSettings", () => (answered = true));
        session.once("close", () => answered || Date.now() - openedAt > 1000 || (manager.closedUnansweredAt = Date.now()));
      }
      return stream;
    },
    notifyResponseByteRead: (stream: http2.ClientHttp2Stream) => inner.notifyResponseByteRead(stream),
  };
  return manager;
}

/** A gRPC transport with mTLS and data-path settings. */
export function createMeshTransport(options: MeshTransportOptions): Transport {
  const tls = options.tls;
  const maxMessageBytes = options.maxMessageBytes ?? 64 * MiB;
  const windowBytes = options.http2WindowBytes ?? 8 * MiB;
  const sessionOptions: http2.SecureClientSessionOptions = {
    ca: tls.caPem,
    ...("certPem" in tls ? { cert: tls.certPem, key: tls.keyPem } : {}),
    servername: options.serverName,
    minVersion: "TLSv1.3",
    settings: { initialWindowSize: windowBytes },
  };
  const sessionManager = windowedSessionManager(options.baseUrl, sessionOptions, 2 * windowBytes);
  const transport = createGrpcTransport({
    baseUrl: options.baseUrl,
    sessionManager,
    nodeOptions: sessionOptions,
    // Batches are compressed by their serializer if at all.
    acceptCompression: [],
    sendCompression: undefined,
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
  });
  const direct = createDirectStreamCall(sessionManager, maxMessageBytes);
  const directUnary = createDirectUnaryCall(direct);
  // Server streams of the data path (Subscribe), and a producer's Publish, through the native module when it is built.
  const native = options.native !== false ? nativeStreamModule() : undefined;
  const nativeStream =
    native &&
    createNativeStreamCall(native, {
      baseUrl: options.baseUrl,
      tls,
      serverName: options.serverName,
      maxMessageBytes,
      streamWindowBytes: windowBytes,
      connectionWindowBytes: 2 * windowBytes,
    });
  const explain = (error: unknown) => rethrowExplained(error, Date.now() - sessionManager.closedUnansweredAt < 2000);
  const onDataPath = (method: { parent: { typeName: string }; name: string }) => dataPathProcedures.has(procedureOf(method));
  return {
    unary: (method, signal, timeoutMs, header, message, contextValues) =>
      (onDataPath(method)
        ? directUnary(method, signal, timeoutMs, header, message)
        : transport.unary(method, signal, timeoutMs, header, message, contextValues)
      ).catch(explain),
    stream: async (method, signal, timeoutMs, header, input, contextValues) => {
      const res = await (onDataPath(method)
        ? nativeStream && (method.methodKind === "server_streaming" || contextValues?.get(publishedBatches))
          ? nativeStream(method, signal, timeoutMs, header, input, contextValues?.get(borrowedResponses))
          : direct(method, signal, timeoutMs, header, input, contextValues)
        : transport.stream(method, signal, timeoutMs, header, input, contextValues)
      ).catch(explain);
      return { ...res, message: explainingErrors(res.message, explain) };
    },
  };
}

/**
 * A refused TLS handshake surfaces as OpenSSL's words in an INTERNAL error,
 * or (a certificate refused after a TLS 1.3 handshake) as a bare reset on a
 * connection the server never answered; a server certificate this client
 * does not accept, as Node's or OpenSSL's verification error. Say what it
 * means, as UNAVAILABLE (what gRPC clients report for a connection that could
 * not be made), keeping the original as the cause.
 */
function rethrowExplained(error: unknown, connectionClosedUnanswered: boolean): never {
  const e = ConnectError.from(error);
  // The reason is in the message, or in a cause (a stream reset by the broken connection).
  let alert: string | undefined;
  let unverified: string | undefined;
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 5; x = x.cause, depth++) {
    const text = x instanceof ConnectError ? x.rawMessage : x.message;
    const code = (x as { code?: unknown }).code;
    alert ??= /alert ([a-z ]+?)(?::|$)/i.exec(text)?.[1];
    if (code === closedUnansweredCode) connectionClosedUnanswered = true;
    if (typeof code === "string" && /^(ERR_TLS_CERT_ALTNAME_INVALID|UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED|CERT_)/.test(code)) unverified ??= text;
    if (/certificate verify failed/.test(text)) unverified ??= text;
  }
  if (unverified)
    throw new ConnectError(
      `this client did not accept the server's certificate (${unverified}): check the server's address (or its TLS server name) and that the CA file is this facility's`,
      Code.Unavailable,
      undefined,
      undefined,
      e,
    );
  const what = alert
    ? `the server refused the TLS handshake (alert ${alert})`
    : connectionClosedUnanswered && (e.code === Code.Canceled || e.code === Code.Unavailable)
      ? "the server closed the connection right after the TLS handshake, before answering: it refused this client's certificate"
      : undefined;
  if (!what) throw error;
  throw new ConnectError(
    `${what}: it takes only certificates from its own CA that are neither revoked nor expired; enroll (lclstream enroll), or renew (lclstream renew)`,
    Code.Unavailable,
    undefined,
    undefined,
    e,
  );
}

async function* explainingErrors<T>(messages: AsyncIterable<T>, explain: (error: unknown) => never): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    explain(error);
  }
}

/** A transport using the cert directory `certDir` (`ca.crt`, `tls.crt`, `tls.key`). */
export async function createMeshTransportFromCertDir(
  baseUrl: string,
  certDir: string,
  options: Omit<MeshTransportOptions, "baseUrl" | "tls"> = {},
): Promise<Transport> {
  return createMeshTransport({ ...options, baseUrl, tls: await readCertDir(certDir) });
}
