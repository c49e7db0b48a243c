/**
 * Serves a ConnectRouter on Node's HTTP/2 server, like connect-node's
 * connectNodeAdapter, plus two corrections to the gRPC status the framework
 * gives for bad request bytes (it decides those before any interceptor runs):
 * a message that does not parse is INVALID_ARGUMENT, not INTERNAL, and an
 * oversized one gets a message that names the limit and how to raise it.
 * It also resets a call whose one request message does not arrive in time.
 */
import { constants, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { Code, ConnectError, type ConnectRouter, type ContextValues } from "@connectrpc/connect";
import type { JsonValue } from "@bufbuild/protobuf";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { rpcError, runtimeDomain } from "./errors.js";

/** Options of {@link createNodeHandler}. */
export interface NodeHandlerOptions {
  contextValues: (req: Http2ServerRequest) => ContextValues;
  maxMessageBytes: number;
  /** A unary or server-streaming call's request must have arrived within this time. */
  requestReadTimeoutMs: number;
  logger: Logger;
  /** Tried first; returns true when it took the request (the data path, see direct-grpc.ts). */
  direct?: (req: Http2ServerRequest, res: Http2ServerResponse) => boolean;
  /** Static files for GET requests (the viewer page), tried next. */
  staticFiles?: (req: Http2ServerRequest, res: Http2ServerResponse) => boolean;
  /** Plain HTTP routes (REST), tried next. */
  httpRoute?: HttpRoute;
}

/** Serves a plain HTTP request and returns true, or returns false when it is not its own. */
export type HttpRoute = (req: Http2ServerRequest, res: Http2ServerResponse) => boolean;

/**
 * Calls one of the server's unary RPCs (`/pkg.Service/Method`) with a JSON
 * request, as the caller of an HTTP request: the Connect protocol through the
 * same router, so every interceptor (identity, policy, logging, metrics) runs.
 * Resolves with the JSON response; rejects with the RPC's ConnectError.
 */
export type UnaryCall = (req: Http2ServerRequest, procedure: string, body: JsonValue, signal: AbortSignal) => Promise<JsonValue>;

/** Request headers that belong to the HTTP request itself, not to the RPC made for it. */
const hopHeaders = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "host",
  "upgrade",
  "te",
]);

export function createUnaryCaller(router: ConnectRouter, contextValues: (req: Http2ServerRequest) => ContextValues): UnaryCall {
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return async (req, procedure, body, signal) => {
    const handler = handlers.get(procedure);
    if (handler?.method.methodKind !== "unary") throw new Error(`${procedure} is not a unary RPC of this server`);
    const header = new Headers({ "content-type": "application/json", "connect-protocol-version": "1" });
    for (const [name, value] of Object.entries(req.headers)) {
      if (!name.startsWith(":") && value !== undefined && !hopHeaders.has(name)) header.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    const uRes = await handler({
      httpVersion: req.httpVersion,
      method: "POST",
      url: `https://${req.headers.host ?? req.headers[":authority"] ?? "localhost"}${procedure}`,
      header,
      body,
      signal,
      contextValues: contextValues(req),
    });
    const chunks: Uint8Array[] = [];
    for await (const chunk of uRes.body ?? []) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    if (uRes.status === 200) return JSON.parse(bytes.toString("utf8")) as JsonValue;
    throw errorFromJsonBytes(bytes, uRes.header, new ConnectError(`HTTP ${uRes.status}`, codeFromHttpStatus(uRes.status)));
  };
}

/** A request listener for `http2.createSecureServer`. */
export function createNodeHandler(router: ConnectRouter, options: NodeHandlerOptions) {
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    const handler = handlers.get(req.url.split("?", 1)[0] ?? "");
    const kind = handler?.method.methodKind;
    if (req.httpVersionMajor < 2 && /^application\/grpc(\+|;|$)/.test(req.headers["content-type"] ?? "")) {
      // gRPC needs HTTP/2 trailers; an HTTP/1.1 client gets a plain answer that says so.
      res.writeHead(505, { "content-type": "text/plain" }).end("gRPC needs HTTP/2: use an HTTP/2 client, or the Connect protocol or REST over HTTP/1.1\n");
      return;
    }
    if (req.stream && (kind === "unary" || kind === "server_streaming")) resetIfRequestDrips(req, options);
    if (options.direct?.(req, res) || options.staticFiles?.(req, res) || options.httpRoute?.(req, res)) return;
    if (!handler) {
      // gRPC clients read HTTP 404 as UNIMPLEMENTED.
      res.writeHead(404).end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues(req));
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(correctGrpcStatus(uRes, handler, options.maxMessageBytes), res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        // A caller that went away mid-stream (a closed viewer tab, a stopped consumer) is no failure of ours.
        if (peerGone(req, res)) return options.logger.debug({ err: reason, procedure: handler.requestPath }, "the caller left before the response ended");
        options.logger.error({ err: reason, procedure: handler.requestPath }, "writing the response failed");
      });
  };
}

/**
 * A client that sends one message but keeps its half of the stream open (a
 * slow-loris) would hold the call, and what it buffered, for as long as it
 * likes: reset the stream once the time is up. Streams the client ends in
 * time are not touched.
 */
function resetIfRequestDrips(req: Http2ServerRequest, options: NodeHandlerOptions) {
  const stream = req.stream;
  const timer = setTimeout(() => {
    if (stream.closed || stream.destroyed) return;
    options.logger.warn({ procedure: req.url, timeoutMs: options.requestReadTimeoutMs }, "the request did not arrive in time; resetting the call");
    stream.close(constants.NGHTTP2_CANCEL);
  }, options.requestReadTimeoutMs);
  timer.unref();
  const done = () => clearTimeout(timer);
  // 'end' comes only once the body was read; a call answered without reading it ends with 'close'.
  stream.once("end", done);
  stream.once("close", done);
}

/** Rewrites the trailer status once the body has been sent (gRPC protocol only). */
function correctGrpcStatus(uRes: UniversalServerResponse, handler: UniversalHandler, maxMessageBytes: number): UniversalServerResponse {
  const { trailer, body } = uRes;
  if (!trailer || !body || !(Symbol.asyncIterator in body)) return uRes;
  const correct = () => {
    const error = findTrailerError(trailer);
    if (!error) return;
    if (error.code === Code.Internal && error.rawMessage.startsWith("parse binary")) {
      setTrailerStatus(
        trailer,
        rpcError(
          Code.InvalidArgument,
          runtimeDomain,
          "MALFORMED_MESSAGE",
          `the request is not a valid ${handler.method.input.typeName} (${error.rawMessage}); check that the client was generated from the same .proto files`,
        ),
      );
    } else if (error.code === Code.ResourceExhausted && error.rawMessage.includes("readMaxBytes")) {
      setTrailerStatus(
        trailer,
        rpcError(
          Code.ResourceExhausted,
          runtimeDomain,
          "MESSAGE_TOO_LARGE",
          `a request message is larger than this server accepts (${maxMessageBytes} bytes): send smaller messages (for example smaller batches), or raise the server's maxMessageBytes`,
          { metadata: { limit_bytes: String(maxMessageBytes) } },
        ),
      );
    }
  };
  async function* corrected() {
    try {
      yield* body as AsyncIterable<Uint8Array>;
    } finally {
      correct();
    }
  }
  return { ...uRes, body: corrected() };
}

/** Whether the caller closed its side: its request or the response's stream is gone. */
export function peerGone(req: { destroyed: boolean }, res: { destroyed?: boolean; stream?: { destroyed: boolean } | null }): boolean {
  return req.destroyed || !!res.destroyed || !!res.stream?.destroyed;
}
