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
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
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
}

/** A request listener for `http2.createSecureServer`. */
export function createNodeHandler(router: ConnectRouter, options: NodeHandlerOptions) {
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    const handler = handlers.get(req.url.split("?", 1)[0] ?? "");
    const kind = handler?.method.methodKind;
    if (kind === "unary" || kind === "server_streaming") resetIfRequestDrips(req, options);
    if (options.direct?.(req, res) || options.staticFiles?.(req, res)) return;
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
