/**
 * The data path's server side: chosen methods served over the gRPC protocol
 * directly on Node's HTTP/2 streams, without connect's per-chunk async
 * iteration, envelope copies and re-encoding. Calls still run through the
 * same interceptors (telemetry, error mapping, authentication, revocation)
 * and get the same HandlerContext as every other call; gRPC-Web and Connect
 * requests for these methods, and every other method, stay with connect.
 * Measured on the buffer relay: see bench/README.md.
 */
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createHandlerContext, createMethodImplSpec, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Logger } from "pino";
import { AsyncQueue } from "./async-queue.js";
import { peerGone } from "./node-handler.js";
import { rpcError, runtimeDomain } from "./errors.js";
import { decodeFrame, encodeFrameParts, GrpcFrameReader, writeAheadBytes } from "./grpc-frames.js";

/**
 * A method to serve directly, with its implementation. Its requests' large
 * bytes fields arrive as ByteParts (the chunks as received), and ByteParts in
 * its responses are sent as they are.
 */
export interface DirectMethod {
  service: DescService;
  method: DescMethod;
  // biome-ignore lint/suspicious/noExplicitAny: any method's implementation, called through connect's untyped invoke
  impl: (...args: any[]) => any;
}

/** Options of {@link createDirectGrpcHandler}. */
export interface DirectGrpcOptions {
  methods: DirectMethod[];
  /** The server's interceptors, outermost first. */
  interceptors: Interceptor[];
  contextValues: (req: Http2ServerRequest) => ContextValues;
  maxMessageBytes: number;
  /** Largest response message sent. */
  maxSendMessageBytes: number;
  shutdownSignal: AbortSignal;
  logger: Logger;
}

/**
 * How far a call's responses may get ahead of its reader (bytes unsent before
 * the writer waits): `writeAheadBytes` unless the implementation sets less in
 * its context's values, as a latest-only subscription does (0: what it sends
 * next should be the newest, not what queued while the reader was slow).
 */
export const writeAheadKey = createContextKey(writeAheadBytes, { description: "bytes a response stream may hold unsent" });

/** Decoded requests queued beyond this pause reading (HTTP/2 flow control pushes back on the client). */
const queuedRequestsBeforePause = 2;

/**
 * One call's side of the wire, as a direct call drives it: a stream of
 * Node's HTTP/2 server, or a connection the native module serves
 * (native-server.ts).
 */
export interface ServerCallWire {
  /** The request's path, `/package.Service/Method`. */
  readonly path: string;
  /** The request's headers, without pseudo-headers. */
  readonly requestHeader: Headers;
  readonly contextValues: ContextValues;
  /** Calls `listener` once when the stream closes (the client went away, or the call ended). */
  onClose(listener: () => void): void;
  /**
   * The request's messages, each as the parts it arrived in; pauses reading
   * while they pile up, and fails with the status a broken request gets.
   */
  requests(signal: AbortSignal): AsyncIterable<Uint8Array[]>;
  sendHeaders(headers: Record<string, string>): void;
  /**
   * Sends a message; past `writeAhead` bytes unsent, returns a promise that
   * resolves once the caller may send more. `onSent`, if given, is called
   * once the wire no longer reads the parts (never, if it cannot tell).
   */
  send(parts: Uint8Array[], writeAhead: number, signal: AbortSignal, onSent?: () => void): Promise<void> | undefined;
  /** Ends the response with trailers, after what was sent. */
  end(trailers: Record<string, string>): void;
  /** The whole response in one HEADERS frame that carries the status (Trailers-Only). */
  trailersOnly(headers: Record<string, string>): void;
  /** The stream can take nothing more. */
  readonly destroyed: boolean;
}

/** Serves direct calls from any wire: `serves` says whether a path is one of them. */
export function createDirectGrpcServer(options: Omit<DirectGrpcOptions, "contextValues">) {
  const byPath = new Map(options.methods.map((m) => [`/${m.service.typeName}/${m.method.name}`, m]));
  return {
    serves: (path: string) => byPath.has(path),
    /** Serves the call; resolves when it ended. */
    serve: (wire: ServerCallWire) => serveCall(byPath.get(wire.path)!, wire, options),
  };
}

/**
 * Returns a request listener that serves `server`'s methods' gRPC requests
 * on Node's HTTP/2 and returns false for anything else.
 */
export function createDirectGrpcHandler(
  server: ReturnType<typeof createDirectGrpcServer>,
  options: Pick<DirectGrpcOptions, "contextValues" | "maxMessageBytes" | "logger">,
) {
  return (req: Http2ServerRequest, res: Http2ServerResponse): boolean => {
    // Anything but a gRPC POST (another verb, gRPC-Web, Connect) is connect's to answer.
    if (!server.serves(req.url) || req.method !== "POST" || !isGrpcContentType(req.headers["content-type"])) return false;
    void server.serve(nodeWire(req, res, options.contextValues(req), options.maxMessageBytes)).catch((error: unknown) => {
      if (peerGone(req, res)) options.logger.debug({ err: error, procedure: req.url }, "the caller left before the call ended");
      else options.logger.error({ err: error, procedure: req.url }, "serving a direct gRPC call failed");
      res.stream.close();
    });
    return true;
  };
}

/** Whether a request's content type is gRPC's (not gRPC-Web's or Connect's). */
export function isGrpcContentType(contentType: string | null | undefined): boolean {
  return /^application\/grpc(\+proto)?$/.test(contentType ?? "");
}

async function serveCall({ service, method, impl }: DirectMethod, wire: ServerCallWire, options: Omit<DirectGrpcOptions, "contextValues">) {
  const requestHeader = wire.requestHeader;
  const timeout = parseTimeout(requestHeader.get("grpc-timeout"), 2 ** 31 - 1);
  const clientGone = new AbortController();
  let finished = false;
  wire.onClose(() => {
    if (!finished) clientGone.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  });
  const context = createHandlerContext({
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: wire.path,
    timeoutMs: timeout.timeoutMs,
    shutdownSignal: options.shutdownSignal,
    requestSignal: clientGone.signal,
    requestHeader,
    contextValues: wire.contextValues,
  });

  const encoding = requestHeader.get("grpc-encoding");
  let failure: ConnectError | undefined =
    timeout.error ??
    (encoding && encoding !== "identity"
      ? framingError(Code.Unimplemented, `this server does not accept ${encoding}-compressed messages; send them uncompressed`)
      : undefined);
  let headersSent = false;
  const sendHeaders = () => {
    if (headersSent) return;
    headersSent = true;
    wire.sendHeaders({ ...headersObject(context.responseHeader), "content-type": "application/grpc+proto", "grpc-accept-encoding": "identity" });
  };
  if (!failure) {
    try {
      const outputs = transformInvokeImplementation(
        createMethodImplSpec(method, impl as never),
        context,
        options.interceptors,
      )(readRequests(wire, method, context.signal));
      for await (const output of outputs) {
        const sent: (() => void)[] = [];
        const parts = encodeFrameParts(method.output, output, sent);
        const length = parts.reduce((n, p) => n + p.byteLength, 0) - 5;
        if (length > options.maxSendMessageBytes) {
          throw rpcError(
            Code.ResourceExhausted,
            runtimeDomain,
            "MESSAGE_TOO_LARGE",
            `a response message of ${length} bytes is larger than this server sends (${options.maxSendMessageBytes} bytes): ask for less at once (for example smaller batches), or raise the server's maxSendMessageBytes`,
            { metadata: { limit_bytes: String(options.maxSendMessageBytes) } },
          );
        }
        sendHeaders();
        const full = wire.send(parts, context.values.get(writeAheadKey), context.signal, sent.length > 0 ? () => sent.forEach((f) => f()) : undefined);
        if (full) await full;
      }
    } catch (error) {
      failure = ConnectError.from(error);
    }
  }
  finished = true;
  context.abort();
  if (wire.destroyed) return;
  const trailer = setTrailerStatus(new Headers(context.responseTrailer), failure);
  if (!headersSent) {
    wire.trailersOnly({ ...headersObject(context.responseHeader), "content-type": "application/grpc+proto", ...headersObject(trailer) });
    return;
  }
  wire.end(headersObject(trailer));
}

/** A request message over the server's limit. */
export function requestTooLarge(length: number, maxMessageBytes: number): ConnectError {
  return rpcError(
    Code.ResourceExhausted,
    runtimeDomain,
    "MESSAGE_TOO_LARGE",
    `a request message of ${length} bytes is larger than this server accepts (${maxMessageBytes} bytes): send smaller messages (for example smaller batches), or raise the server's maxMessageBytes`,
    { metadata: { limit_bytes: String(maxMessageBytes) } },
  );
}

/** A request message flagged compressed: a protocol error (the gRPC spec: INTERNAL). */
export function requestCompressed(): ConnectError {
  return framingError(
    Code.Internal,
    "a request message is flagged compressed, but the call negotiated no compression (grpc-encoding); send messages uncompressed, flag 0",
  );
}

/** A request stream that ended inside a message. */
export function requestTruncated(): ConnectError {
  return framingError(Code.InvalidArgument, "the request stream ended inside a message; the client sent a truncated frame");
}

/** A call's side of a stream of Node's HTTP/2 server. */
function nodeWire(req: Http2ServerRequest, res: Http2ServerResponse, contextValues: ContextValues, maxMessageBytes: number): ServerCallWire {
  const requestHeader = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith(":") && value !== undefined) requestHeader.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return {
    path: req.url,
    requestHeader,
    contextValues,
    onClose: (listener) => res.once("close", listener),
    requests: (signal) => nodeRequests(req, maxMessageBytes, signal),
    sendHeaders: (headers) => res.writeHead(200, headers),
    send(parts, writeAhead, signal, onSent) {
      // One writev for the parts of a message; the last one's callback comes once all are written out (not on an error).
      res.stream.cork();
      const last = parts.length - 1;
      for (let i = 0; i < last; i++) res.write(parts[i]!);
      res.write(parts[last]!, onSent && ((error) => error || onSent()));
      res.stream.uncork();
      // (Node emits "drain" only after a write found the stream full.)
      if (res.stream.writableNeedDrain && res.stream.writableLength > writeAhead) return drained(res, signal);
      return undefined;
    },
    end(trailers) {
      res.addTrailers(trailers);
      res.end();
    },
    // (writeHead + end would send HEADERS, then an empty DATA frame with
    // END_STREAM, which grpc-go and grpc-python read as a stream closed
    // without trailers.)
    trailersOnly: (headers) => res.stream.respond({ ...headers, ":status": 200 }, { endStream: true }),
    get destroyed() {
      return res.stream.destroyed;
    },
  };
}

/** The request messages of a stream of Node's HTTP/2 server, framed here; reading pauses while they pile up. */
async function* nodeRequests(req: Http2ServerRequest, maxMessageBytes: number, signal: AbortSignal) {
  const queue = new AsyncQueue<Uint8Array[]>();
  const reader = new GrpcFrameReader(maxMessageBytes);
  const onData = (chunk: Buffer) => {
    const messages = reader.push(chunk);
    if (!Array.isArray(messages)) {
      req.off("data", onData);
      queue.fail(messages.kind === "too-large" ? requestTooLarge(messages.length, maxMessageBytes) : requestCompressed());
      return;
    }
    for (const message of messages) queue.push(message);
    if (queue.length >= queuedRequestsBeforePause) req.pause();
  };
  req.on("data", onData);
  req.once("end", () => {
    if (reader.partial) queue.fail(requestTruncated());
    else queue.close();
  });
  try {
    for await (const parts of queue.drain(signal)) {
      if (queue.length < queuedRequestsBeforePause) req.resume();
      yield parts;
    }
  } finally {
    req.off("data", onData);
  }
}

/** The request messages, decoded as the call reads them. */
async function* readRequests(wire: ServerCallWire, method: DescMethod, signal: AbortSignal) {
  for await (const parts of wire.requests(signal)) {
    let message;
    try {
      message = decodeFrame(method.input, parts);
    } catch (error) {
      throw rpcError(
        Code.InvalidArgument,
        runtimeDomain,
        "MALFORMED_MESSAGE",
        `the request is not a valid ${method.input.typeName} (${(error as Error).message}); check that the client was generated from the same .proto files`,
      );
    }
    yield message;
  }
}

/**
 * An error in the gRPC framing itself (compression, a truncated frame): a
 * code and message without ErrorInfo, as gRPC implementations answer it
 * (the Connect conformance suite expects no details there). Only a broken
 * client meets one; errors about what a message says carry ErrorInfo.
 */
function framingError(code: Code, message: string): ConnectError {
  return new ConnectError(message, code);
}

/** Resolves when the response can take more bytes; rejects when the call ends first. */
function drained(res: Http2ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      signal.removeEventListener("abort", done);
      if (signal.aborted) reject(signal.reason);
      else if (res.stream.destroyed) reject(new ConnectError("the client went away", Code.Canceled));
      else resolve();
    };
    res.once("drain", done);
    res.once("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

function headersObject(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => (out[name] = value));
  return out;
}
