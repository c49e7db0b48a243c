/**
 * Clients of lclstream services: a gRPC transport over HTTP/2 with mutual TLS
 * from a cert directory, with the same data-path settings as the servers.
 */
import type * as http2 from "node:http2";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createDirectStreamCall } from "./direct-transport.js";
import { readCertDir, type CertMaterial } from "./pki.js";

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
}

/**
 * An HTTP/2 session manager that also widens each connection's receive
 * window (node leaves it at 64 KiB whatever the stream windows are, which
 * caps a large server stream at one window per round trip).
 */
function windowedSessionManager(baseUrl: string, sessionOptions: http2.SecureClientSessionOptions, connectionWindowBytes: number) {
  const inner = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000 }, sessionOptions);
  const widened = new WeakSet<http2.ClientHttp2Session>();
  return {
    authority: inner.authority,
    async request(...args: Parameters<Http2SessionManager["request"]>) {
      const stream = await inner.request(...args);
      const session = stream.session as http2.ClientHttp2Session | undefined;
      if (session && !widened.has(session)) {
        widened.add(session);
        session.setLocalWindowSize(connectionWindowBytes);
      }
      return stream;
    },
    notifyResponseByteRead: (stream: http2.ClientHttp2Stream) => inner.notifyResponseByteRead(stream),
  };
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
  return {
    unary: (...args) => transport.unary(...args).catch(rethrowExplained),
    stream: async (method, signal, timeoutMs, header, input, contextValues) => {
      const res = await (dataPathMethods.has(`/${method.parent.typeName}/${method.name}`)
        ? direct(method, signal, timeoutMs, header, input)
        : transport.stream(method, signal, timeoutMs, header, input, contextValues)
      ).catch(rethrowExplained);
      return { ...res, message: explainingErrors(res.message) };
    },
  };
}

/**
 * A refused TLS handshake surfaces as OpenSSL's words in an INTERNAL error;
 * say what it means, as UNAVAILABLE (what gRPC clients report for a
 * connection that could not be made), keeping the original as the cause.
 */
function rethrowExplained(error: unknown): never {
  const e = ConnectError.from(error);
  // The alert is in the message, or in a cause (a stream reset by the broken connection).
  let alert: string | undefined;
  for (let x: unknown = e, depth = 0; x instanceof Error && !alert && depth < 5; x = x.cause, depth++) {
    alert = /alert ([a-z ]+?)(?::|$)/i.exec(x instanceof ConnectError ? x.rawMessage : x.message)?.[1];
  }
  if (!alert) throw error;
  throw new ConnectError(
    `the server refused the TLS handshake (alert ${alert}): it takes only certificates from its own CA that are neither revoked nor expired; enroll (lclstream enroll), or renew (lclstream renew)`,
    Code.Unavailable,
    undefined,
    undefined,
    e,
  );
}

async function* explainingErrors<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    rethrowExplained(error);
  }
}

/**
 * The calls that carry event batches, made over the direct data path
 * (direct-transport.ts): measured faster than connect's transport at the
 * batch sizes detectors produce.
 */
const dataPathMethods = new Set(["/lclstream.buffer.v1.BufferService/Publish", "/lclstream.buffer.v1.BufferService/Subscribe"]);

/** A transport using the cert directory `certDir` (`ca.crt`, `tls.crt`, `tls.key`). */
export async function createMeshTransportFromCertDir(
  baseUrl: string,
  certDir: string,
  options: Omit<MeshTransportOptions, "baseUrl" | "tls"> = {},
): Promise<Transport> {
  return createMeshTransport({ ...options, baseUrl, tls: await readCertDir(certDir) });
}
