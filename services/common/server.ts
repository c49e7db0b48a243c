/**
 * createServer: one lclstream gRPC server. connect-node on HTTP/2 over TLS 1.3
 * that requires a client certificate from the mesh CA; the caller's identity
 * available to every handler; health and reflection; telemetry; data-path
 * settings (no compression, large HTTP/2 windows, explicit size limits);
 * graceful shutdown that ends open streams with UNAVAILABLE.
 */
import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Code, createConnectRouter, createContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { createRegistry, type DescService } from "@bufbuild/protobuf";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { z } from "zod";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { rpcError, runtimeDomain } from "./errors.js";
import { createHealthService, HealthStatus, ServingStatus } from "./health.js";
import { createAuthInterceptor, createTelemetryInterceptor, errorMappingInterceptor } from "./interceptors.js";
import { createLogger, type Logger } from "./logger.js";
import { RpcMetrics, serveMetrics } from "./metrics.js";
import { createDirectGrpcHandler, createDirectGrpcServer, type DirectMethod } from "./direct-grpc.js";
import { createNativeServing } from "./native-server.js";
import { nativeStreamModule } from "./native-stream.js";
import { createNodeHandler, createUnaryCaller, type HttpRoute, type UnaryCall } from "./node-handler.js";
import { createStaticHandler } from "./static-files.js";
import { resolveIdentity } from "./identity.js";
import { tlsPeerKey, tlsPeerOf } from "./peer.js";
import type { CertMaterial } from "./pki.js";
import { registerReflection } from "./reflection.js";
import { requestBoundsInterceptor } from "./request-bounds.js";
import { createRevocationInterceptor, type RevocationSet } from "./revocation.js";

const MiB = 1024 * 1024;

/** A service and its implementation, as a server serves it. */
export interface ServiceRegistration {
  service: DescService;
  implementation: Partial<ServiceImpl<DescService>>;
  /**
   * The public descriptor reflection and health describe, when `service` is
   * a wire-compatible view of it (the buffer's batches-as-bytes view).
   */
  describedAs?: DescService;
  /**
   * Methods (by name) served over gRPC directly on the HTTP/2 streams rather
   * than through connect: the data path (see direct-grpc.ts).
   */
  direct?: string[];
  /**
   * The implementation of the `direct` methods, when it differs from
   * `implementation` (their large bytes fields arrive and leave as ByteParts).
   */
  directImplementation?: Partial<ServiceImpl<DescService>>;
}

/** Pairs a service with its implementation, type-checked. */
export function serve<S extends DescService>(service: S, implementation: Partial<ServiceImpl<S>>): ServiceRegistration {
  return { service, implementation: implementation as Partial<ServiceImpl<DescService>> };
}

/** Network and limit settings, validated; every field has a default. */
export const serverSettingsSchema = z.strictObject({
  /** Address to bind; loopback unless deployed. */
  host: z.string().min(1).default("127.0.0.1"),
  /** Port to bind; 0 picks a free one. */
  port: z.number().int().min(0).max(65535).default(0),
  /** Refuse connections without a valid client certificate (false only for the enrollment listener). */
  requireClientCert: z.boolean().default(true),
  /** Largest message accepted, in bytes (and sent, unless maxSendMessageBytes says otherwise). */
  maxMessageBytes: z
    .number()
    .int()
    .min(1024)
    .max(2 ** 31)
    .default(64 * MiB),
  /** Largest message sent, in bytes; default maxMessageBytes (gRPC servers keep the two apart too). */
  maxSendMessageBytes: z
    .number()
    .int()
    .min(1024)
    .max(2 ** 31)
    .optional(),
  /** HTTP/2 stream flow-control window, in bytes; the connection window is twice this. */
  http2WindowBytes: z
    .number()
    .int()
    .min(65535)
    .max(2 ** 31 - 1)
    .default(8 * MiB),
  /** Port of the Prometheus endpoint; unset serves none. */
  metricsPort: z.number().int().min(0).max(65535).optional(),
  /** Address of the Prometheus endpoint. */
  metricsHost: z.string().min(1).default("127.0.0.1"),
  /** How long shutdown waits for streams to end before closing connections, in ms. */
  shutdownGraceMs: z.number().int().min(0).default(2000),
  /** A TLS handshake not finished in this time is dropped (a client that connects and stays silent), in ms. */
  handshakeTimeoutMs: z.number().int().min(1).default(10_000),
  /**
   * A connection with no open call for this long is closed (GOAWAY; clients
   * reconnect when they need to), in ms. Longer than the clients' own idle
   * timers (connect-node 15 min, grpc-js 30 min), so they normally close first
   * and no call races the GOAWAY.
   */
  idleConnectionTimeoutMs: z.number().int().min(1).default(3_600_000),
  /**
   * Every connection is pinged (HTTP/2 PING) this often, in ms, and closed
   * when a ping goes unanswered for `keepaliveTimeoutMs`: a peer whose host
   * hung, or that vanished without the close reaching this server, would
   * otherwise hold its calls open (and a consumer's batches undelivered) for
   * as long as the server runs. Node's HTTP/2 can miss even a reset
   * connection: it stops reading while a write is under way, and the bench
   * found the buffer holding such a socket that it no longer read or wrote
   * (zombie sessions, as in nodejs/node#55804 and #61304).
   */
  keepaliveIntervalMs: z.number().int().min(1).default(20_000),
  /** How long a keepalive ping may go unanswered before its connection is closed, in ms (as grpc-go's server keepalive timeout). */
  keepaliveTimeoutMs: z.number().int().min(1).default(20_000),
  /**
   * The request of a call whose client sends one message (unary and server
   * streaming) must have arrived whole within this time, or the call is reset:
   * a client dripping a request holds nothing for long. In ms.
   */
  requestReadTimeoutMs: z.number().int().min(1).default(30_000),
  /**
   * Serve the data-path calls of this project's native client (Publish,
   * Subscribe) on the native module, when it is built (native-server.ts);
   * false serves every call on Node's HTTP/2.
   */
  nativeDataPath: z.boolean().default(true),
});

/** Settings as written in a config (defaults filled in by createServer). */
export type ServerSettings = z.input<typeof serverSettingsSchema>;

/** Everything a server needs. */
export interface ServerOptions extends ServerSettings {
  /** Name for logs and metrics, for example `buffer`. */
  name: string;
  services: ServiceRegistration[];
  /** The server's certificate, key and trusted CAs. */
  tls: CertMaterial;
  trustDomain: string;
  /** The front proxy's identity URI: the only peer allowed to forward client identities. */
  proxyIdentity?: string;
  /** Procedures (`/pkg.Service/Method`) callable without a client certificate. */
  publicProcedures?: string[];
  /** Revoked certificates to refuse; without it the server trusts every certificate the CA signed. */
  revocations?: RevocationSet;
  /** Interceptors run inside the shared ones, just before the handlers. */
  interceptors?: Interceptor[];
  /** Static files served for GET under a prefix (the request service serves the viewer page). */
  staticFiles?: { prefix: string; dir: string };
  /**
   * Plain HTTP routes beside the RPCs (the request service's REST surface),
   * given a way to call the server's own unary RPCs through every interceptor
   * as the HTTP request's caller.
   */
  httpRoutes?: (call: UnaryCall) => HttpRoute;
  /** Also serve HTTP/1.1 (ALPN `http/1.1`), for REST and the Connect protocol; gRPC stays HTTP/2. */
  allowHttp1?: boolean;
  logger?: Logger;
}

/** A running server. */
export interface LclstreamServer {
  /** `https://host:port`. */
  readonly url: string;
  readonly port: number;
  readonly health: HealthStatus;
  readonly metrics: RpcMetrics;
  /** `http://host:port/metrics`, when served. */
  readonly metricsUrl: string | undefined;
  readonly logger: Logger;
  /** Aborted when shutdown starts; every handler's signal follows it. */
  readonly shutdownSignal: AbortSignal;
  /** Replaces the server certificate (after a renewal) for new connections. */
  updateTls(tls: CertMaterial): void;
  /** Graceful shutdown: NOT_SERVING, streams end with UNAVAILABLE, connections close. */
  close(): Promise<void>;
}

/** Starts a server and resolves once it listens. */
export async function createServer(options: ServerOptions): Promise<LclstreamServer> {
  const settings = serverSettingsSchema.parse(pickSettings(options));
  const logger = options.logger ?? createLogger(options.name);
  const metrics = new RpcMetrics(options.name);
  const health = new HealthStatus();
  const shutdown = new AbortController();
  // Every call's signal follows this one: many listeners are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const services = options.services.map((r) => r.describedAs ?? r.service);
  const maxSendBytes = settings.maxSendMessageBytes ?? settings.maxMessageBytes;

  const interceptors = [
    createTelemetryInterceptor(logger, metrics),
    errorMappingInterceptor,
    createAuthInterceptor({
      trustDomain: options.trustDomain,
      // service/front as other identities are written, or its full spiffe:// URI.
      proxyIdentity: options.proxyIdentity && resolveIdentity(options.proxyIdentity, options.trustDomain).uri,
      publicProcedures: new Set([...(options.publicProcedures ?? []), "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"]),
    }),
    ...(options.revocations ? [createRevocationInterceptor(options.revocations)] : []),
    requestBoundsInterceptor,
    ...(options.interceptors ?? []),
  ];
  const router = createConnectRouter({
    // Detector data is compressed by its serializer if at all; gzip here costs
    // far more CPU than it saves on loopback and fast links.
    acceptCompression: [],
    readMaxBytes: settings.maxMessageBytes,
    writeMaxBytes: maxSendBytes,
    shutdownSignal: shutdown.signal,
    // JSON requests and responses may hold an Any of any type the server knows.
    jsonOptions: { registry: createRegistry(...services.map((s) => s.file), file_google_rpc_error_details) },
    interceptors,
  });
  for (const { service, implementation } of options.services) router.service(service, implementation);
  router.service(Health, createHealthService(health));
  registerReflection(router, [...services, Health]);

  const contextValues = (req: http2.Http2ServerRequest) => {
    const values = createContextValues();
    // HTTP/1.1 requests have no stream: their connection is the socket.
    values.set(tlsPeerKey, tlsPeerOf(req.socket as TLSSocket, options.trustDomain, req.stream?.session ?? req.socket));
    return values;
  };
  const directMethods = options.services.flatMap(({ service, implementation, directImplementation = implementation, direct = [] }) =>
    direct.map((name) => {
      const method = service.methods.find((m) => m.name === name);
      const impl: unknown = method && (directImplementation as Record<string, unknown>)[method.localName];
      if (!method || typeof impl !== "function") throw new Error(`${service.typeName} has no implemented method ${name} to serve directly`);
      return { service, method, impl: impl.bind(directImplementation) as DirectMethod["impl"] };
    }),
  );
  // One server of the direct methods, for Node's HTTP/2 and the native module alike.
  const directServer = createDirectGrpcServer({
    methods: directMethods,
    interceptors,
    maxMessageBytes: settings.maxMessageBytes,
    maxSendMessageBytes: maxSendBytes,
    shutdownSignal: shutdown.signal,
    logger,
  });
  const direct = createDirectGrpcHandler(directServer, { contextValues, maxMessageBytes: settings.maxMessageBytes, logger });
  const staticFiles = options.staticFiles && createStaticHandler(options.staticFiles.dir, options.staticFiles.prefix);
  const httpRoute = options.httpRoutes?.(createUnaryCaller(router, contextValues));
  const handler = createNodeHandler(router, {
    maxMessageBytes: settings.maxMessageBytes,
    requestReadTimeoutMs: settings.requestReadTimeoutMs,
    logger,
    contextValues,
    direct,
    staticFiles,
    httpRoute,
  });

  let tls = options.tls;
  const secureContext = () => ({ ...tlsOptions(tls), ...(options.revocations?.crlPem ? { crl: options.revocations.crlPem } : {}) });
  const server = http2.createSecureServer(
    {
      ...secureContext(),
      // Always ask; refuse missing or foreign certificates unless this is the enrollment listener.
      requestCert: true,
      rejectUnauthorized: settings.requireClientCert,
      minVersion: "TLSv1.3",
      allowHTTP1: options.allowHttp1 ?? false,
      handshakeTimeout: settings.handshakeTimeoutMs,
      settings: { initialWindowSize: settings.http2WindowBytes, maxConcurrentStreams: 1000 },
      // Node counts buffered frames against this (in MB); a few full windows must fit.
      maxSessionMemory: Math.ceil((settings.http2WindowBytes * 8) / MiB),
    },
    handler,
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    session.on("error", (error) => logger.debug({ err: error }, "HTTP/2 session error"));
    // The connection window must exceed one stream's, or one stream starves the rest.
    session.once("localSettings", () => session.setLocalWindowSize(settings.http2WindowBytes * 2));
    closeWhenIdle(session, settings.idleConnectionTimeoutMs, logger);
    keepAlive(session, settings.keepaliveIntervalMs, settings.keepaliveTimeoutMs, logger);
  });
  // An HTTP/1.1 connection has no session or stream timers: one silent for requestReadTimeoutMs is closed.
  server.on("secureConnection", (socket: TLSSocket) => {
    if (socket.alpnProtocol !== "h2") socket.setTimeout(settings.requestReadTimeoutMs, () => socket.destroy());
  });
  server.on("tlsClientError", (error) => logger.debug({ err: error }, "TLS handshake refused"));
  // New handshakes with a revoked certificate fail once TLS has the new CRL.
  const stopCrl = options.revocations?.onCrl(() => server.setSecureContext(secureContext()));

  // With data-path methods and the native module built, connections from the
  // module's client are served by the module (native-server.ts); the rest
  // (every other client) go to Node's HTTP/2 server, untouched.
  const native = directMethods.length > 0 && settings.nativeDataPath ? nativeStreamModule() : undefined;
  const nativeServing =
    native &&
    createNativeServing({
      native,
      tls: () => tls,
      crlPem: () => options.revocations?.crlPem,
      trustDomain: options.trustDomain,
      limits: {
        streamWindowBytes: settings.http2WindowBytes,
        connectionWindowBytes: settings.http2WindowBytes * 2,
        maxMessageBytes: settings.maxMessageBytes,
        keepaliveIntervalMs: settings.keepaliveIntervalMs,
        keepaliveTimeoutMs: settings.keepaliveTimeoutMs,
        handshakeTimeoutMs: settings.handshakeTimeoutMs,
      },
      direct: directServer,
      decline: (socket) => server.emit("connection", socket),
      onReleased: (bytes) => metrics.released(bytes),
      logger,
    });
  const listener = nativeServing ? createNetServer({ pauseOnConnect: true }, (socket) => nativeServing.connection(socket)) : server;
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(settings.port, settings.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const port = (listener.address() as AddressInfo).port;
  const metricsServer = settings.metricsPort === undefined ? undefined : await serveMetrics(metrics.registry, settings.metricsHost, settings.metricsPort);

  health.set("", ServingStatus.SERVING);
  for (const service of services) health.set(service.typeName, ServingStatus.SERVING);
  const url = `https://${settings.host.includes(":") ? `[${settings.host}]` : settings.host}:${port}`;
  logger.info({ url, services: services.map((s) => s.typeName) }, "serving");

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      health.setAllNotServing();
      stopCrl?.();
      shutdown.abort(rpcError(Code.Unavailable, runtimeDomain, "SERVER_SHUTTING_DOWN", `the ${options.name} server is shutting down; retry when it is back`));
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      // GOAWAY: no new streams; each connection closes when its last stream ends.
      for (const session of sessions) session.close();
      const force = setTimeout(() => {
        for (const session of sessions) session.destroy();
        // A session whose peer vanished can be destroyed and leave its socket open, holding up close.
        for (const socket of sockets) socket.destroy();
      }, settings.shutdownGraceMs);
      await Promise.all([closed, nativeServing?.close(settings.shutdownGraceMs)]);
      clearTimeout(force);
      if (metricsServer) {
        const metricsClosed = new Promise<void>((resolve) => metricsServer.close(() => resolve()));
        metricsServer.closeAllConnections(); // scrapers keep connections alive
        await metricsClosed;
      }
      logger.info("stopped");
    })());

  return {
    url,
    port,
    health,
    metrics,
    metricsUrl: metricsServer ? `http://${settings.metricsHost}:${metricsServer.port}/metrics` : undefined,
    logger,
    shutdownSignal: shutdown.signal,
    updateTls: (material) => {
      tls = material;
      server.setSecureContext(secureContext());
    },
    close,
  };
}

/**
 * Closes a connection that has had no open stream for `idleMs` (a client that
 * connects and never calls holds a socket and session memory). A quiet but
 * open stream (a paused subscription) keeps it: only streams are counted, not
 * bytes, so a client cannot keep an idle connection alive by dripping pings.
 */
function closeWhenIdle(session: http2.ServerHttp2Session, idleMs: number, logger: Logger) {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      logger.debug({ idleMs }, "closing a connection with no call");
      session.close();
    }, idleMs);
    timer.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

/** Pings the peer every `intervalMs`, one ping at a time, and destroys the session when one goes unanswered for `timeoutMs`. */
function keepAlive(session: http2.ServerHttp2Session, intervalMs: number, timeoutMs: number, logger: Logger) {
  const peer = session.socket.remoteAddress;
  let unanswered: NodeJS.Timeout | undefined;
  const answered = () => {
    clearTimeout(unanswered);
    unanswered = undefined;
  };
  const timer = setInterval(() => {
    if (unanswered || session.destroyed) return;
    unanswered = setTimeout(() => {
      if (session.destroyed) return;
      logger.info({ timeoutMs, peer }, "closing a connection whose peer stopped answering pings");
      session.destroy();
    }, timeoutMs);
    unanswered.unref();
    try {
      session.ping(answered); // called on the answer, or with an error when the session ends first
    } catch {
      answered(); // the session is ending: nothing to watch
    }
  }, intervalMs);
  timer.unref();
  session.once("close", () => {
    clearInterval(timer);
    answered();
  });
}

function tlsOptions(tls: CertMaterial) {
  return { key: tls.keyPem, cert: tls.certPem, ca: tls.caPem };
}

/** The settings fields of the options (the schema is strict: it refuses the rest). */
function pickSettings(options: ServerOptions): ServerSettings {
  return Object.fromEntries(serverSettingsSchema.keyof().options.map((key) => [key, options[key]])) as ServerSettings;
}
