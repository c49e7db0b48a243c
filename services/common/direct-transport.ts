/**
 * The data path's client side: streaming calls made over the gRPC protocol
 * directly on Node's HTTP/2 streams (the counterpart of direct-grpc.ts).
 * Messages are framed by hand, large bytes fields sent by reference, and
 * responses read from 'data' events rather than per-chunk async iteration.
 * Connections come from connect's session manager (reconnects, keepalive),
 * and failures are ConnectErrors with the server's status and details, as
 * from connect's own transport.
 */
import * as http2 from "node:http2";
import {
  create,
  fromBinary,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, createContextKey, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { findTrailerError, validateResponse } from "@connectrpc/connect/protocol-grpc";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { AsyncQueue } from "./async-queue.js";
import { contiguous, copyParts } from "./byte-parts.js";
import { encodeFrameParts, GrpcFrameReader, writeAheadBytes } from "./grpc-frames.js";

/** What the transport needs of a session manager (connect's, or one that wraps it). */
export type SessionManager = Pick<Http2SessionManager, "request" | "notifyResponseByteRead">;

/** Responses queued beyond this pause reading (HTTP/2 flow control pushes back on the server). */
const queuedResponsesBeforePause = 2;

/**
 * Set in a call's `contextValues` by a caller that is done with each response
 * before it takes the next (a loop that writes each batch out, or counts it).
 * Every response is then gathered into the same memory, reused, instead of
 * memory of its own: its `bytes` fields are views of that memory, valid only
 * until the next response is taken. Fresh memory for every 1 MiB batch costs
 * the kernel's page faults and zeroing, about a fifth of a consumer's rate
 * (bench/README.md, Consumers). Off by default.
 */
export const borrowedResponses = createContextKey(false, { description: "responses valid until the next is taken" });

/** Makes a streaming call directly on an HTTP/2 stream from `sessions`. */
export function createDirectStreamCall(sessions: SessionManager, maxMessageBytes: number) {
  return async function stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    signal?.throwIfAborted();
    const requestHeader = Object.fromEntries(grpcRequestHeaders(header, timeoutMs, "lclstream-direct"));
    const h2 = await sessions.request("POST", `/${method.parent.typeName}/${method.name}`, requestHeader, {});
    // An abort while the connection was being made fired before anyone listened.
    if (signal?.aborted) {
      h2.close(http2.constants.NGHTTP2_CANCEL);
      throw ConnectError.from(signal.reason, Code.Canceled);
    }

    // The first reason the call failed wins: abort, deadline, a write failure, a reset.
    let failure: ConnectError | undefined;
    let endedCleanly = false;
    const fail = (error: ConnectError) => {
      if (endedCleanly) return; // a late write error after the server's status changes nothing
      failure ??= error;
      messages.fail(failure);
      if (!h2.closed) h2.close(http2.constants.NGHTTP2_CANCEL);
    };
    const cleanup = watchAbortAndDeadline(signal, timeoutMs, fail);

    const messages = new AsyncQueue<Uint8Array[]>();
    const reader = new GrpcFrameReader(maxMessageBytes);
    const trailer = new Headers();
    let lastNotified = 0;
    h2.on("data", (chunk: Buffer) => {
      // The session manager's keepalive only needs to know the connection lives; once a second is plenty.
      const now = Date.now();
      if (now - lastNotified > 1000) {
        lastNotified = now;
        sessions.notifyResponseByteRead(h2);
      }
      const frames = reader.push(chunk);
      if (!Array.isArray(frames)) {
        fail(
          frames.kind === "too-large"
            ? new ConnectError(
                `a response message of ${frames.length} bytes is larger than this client accepts (${maxMessageBytes} bytes); raise maxMessageBytes`,
                Code.ResourceExhausted,
              )
            : new ConnectError("the server sent a compressed message this client did not ask for", Code.Internal),
        );
        return;
      }
      for (const frame of frames) messages.push(frame);
      if (messages.length >= queuedResponsesBeforePause) h2.pause();
    });
    h2.on("trailers", (headers: http2.IncomingHttpHeaders) => copyInto(trailer, headers));
    h2.on("error", (error: Error & { code?: string }) => fail(errorOfStream(h2, error)));
    h2.on("close", () => {
      cleanup();
      if (failure) return;
      if (h2.rstCode !== undefined && h2.rstCode !== http2.constants.NGHTTP2_NO_ERROR) return fail(errorOfStream(h2));
      if (reader.partial) return fail(new ConnectError("the response ended inside a message", Code.Internal));
      endedCleanly = true;
      messages.close();
    });

    void (async () => {
      for await (const init of input) {
        // One writev for the parts of a message, as the server writes them.
        h2.cork();
        for (const part of encodeFrameParts(method.input, create(method.input, init))) h2.write(part);
        h2.uncork();
        if (h2.writableNeedDrain && h2.writableLength > writeAheadBytes) await drained(h2);
      }
      h2.end();
    })().catch((error: unknown) => fail(ConnectError.from(error)));

    let status = 0;
    let headersEndedStream = false;
    const responseHeader = await new Promise<Headers>((resolve, reject) => {
      h2.once("response", (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => {
        status = headers[":status"] ?? 0;
        headersEndedStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        resolve(copyInto(new Headers(), headers));
      });
      h2.once("close", () => reject(failure ?? new ConnectError("the server closed the call without a response", Code.Unavailable)));
    }).catch((error: unknown) => {
      cleanup();
      throw error;
    });
    // Only a HEADERS frame that ends the stream is Trailers-Only; a grpc-status in
    // headers that a body or trailers follow is not the call's status.
    const foundStatus = headersEndedStream && responseHeader.has("grpc-status");
    try {
      const validated = validateResponse(status, foundStatus ? responseHeader : withoutStatus(responseHeader));
      if (validated.headerError) throw validated.headerError;
    } catch (error) {
      // Not a gRPC response, or a trailers-only refusal: nothing more will be read. A stream both
      // sides have ended closes by itself; resetting it as well would count against the server's
      // guard on rapid resets (nghttp2: a burst of 1000, then 33 a second), and a client refused
      // that often would lose its whole connection.
      if (!h2.closed && !(headersEndedStream && h2.writableEnded)) h2.close(http2.constants.NGHTTP2_CANCEL);
      throw error;
    }

    const gather = contextValues?.get(borrowedResponses) ? reusedGather() : contiguous;
    async function* read(): AsyncGenerator<MessageShape<O>> {
      try {
        // No signal here: an abort, a deadline or a reset fails the queue itself (see fail).
        for await (const parts of messages.drain()) {
          if (messages.length < queuedResponsesBeforePause) h2.resume();
          yield fromBinary(method.output, gather(parts));
        }
        if (!foundStatus) throwTrailerStatus(trailer, responseHeader); // trailers-only: the status came with the headers
      } finally {
        if (!h2.closed) h2.close(http2.constants.NGHTTP2_CANCEL);
      }
    }
    return { stream: true, service: method.parent, method, header: responseHeader, trailer, message: read() } as StreamResponse<I, O>;
  };
}

/**
 * Makes a unary call the same way (a stream of one message each way):
 * measured at about half the client CPU of connect's unary call, which
 * matters for the acknowledgements a consumer sends beside its stream.
 */
export function createDirectUnaryCall(stream: ReturnType<typeof createDirectStreamCall>) {
  return async function unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
  ): Promise<UnaryResponse<I, O>> {
    const res = await stream(
      method as unknown as DescMethodStreaming<I, O>,
      signal,
      timeoutMs,
      header,
      (async function* () {
        yield input;
      })(),
    );
    let message: MessageShape<O> | undefined;
    for await (const m of res.message) {
      if (message) throw new ConnectError("protocol error: the server sent more than one response to a unary call", Code.Unimplemented);
      message = m;
    }
    if (!message) throw new ConnectError("protocol error: the server sent no response to a unary call", Code.Unimplemented);
    return { stream: false, service: method.parent, method, header: res.header, trailer: res.trailer, message };
  };
}

/** Gathers each message into the same memory, grown when a message is larger (see borrowedResponses). */
function reusedGather(): (parts: readonly Uint8Array[]) => Uint8Array {
  let memory = new Uint8Array(0);
  return (parts) => {
    if (parts.length === 1) return parts[0]!;
    const length = parts.reduce((n, p) => n + p.byteLength, 0);
    if (memory.byteLength < length) memory = new Uint8Array(length);
    copyParts(parts, memory);
    return memory.subarray(0, length);
  };
}

/** Calls `fail` when `signal` aborts or `timeoutMs` passes; returns what stops watching. */
export function watchAbortAndDeadline(signal: AbortSignal | undefined, timeoutMs: number | undefined, fail: (error: ConnectError) => void): () => void {
  const onAbort = () => fail(ConnectError.from(signal!.reason, Code.Canceled));
  signal?.addEventListener("abort", onAbort, { once: true });
  const deadline =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => fail(new ConnectError(`the call took longer than its ${timeoutMs} ms deadline`, Code.DeadlineExceeded)), timeoutMs);
  return () => {
    signal?.removeEventListener("abort", onAbort);
    clearTimeout(deadline);
  };
}

/** The headers of a gRPC call from this client: the caller's, and its deadline. */
export function grpcRequestHeaders(header: HeadersInit | undefined, timeoutMs: number | undefined, userAgent: string): [string, string][] {
  const out: [string, string][] = [
    ["content-type", "application/grpc+proto"],
    ["te", "trailers"],
    ["grpc-accept-encoding", "identity"],
    ["user-agent", userAgent],
  ];
  new Headers(header).forEach((value, name) => out.push([name, value]));
  if (timeoutMs !== undefined) out.push(["grpc-timeout", `${Math.max(1, Math.ceil(timeoutMs))}m`]);
  return out;
}

/** Ends a response read to its end: throws the status its trailers carry, or that it had none. */
export function throwTrailerStatus(trailer: Headers, responseHeader: Headers): void {
  const error = findTrailerError(trailer);
  if (error) {
    // As connect's transport: the error's metadata holds the response headers too.
    responseHeader.forEach((value, name) => error.metadata.append(name, value));
    throw error;
  }
  if (!trailer.has("grpc-status")) throw new ConnectError("protocol error: the server sent no status", Code.Internal);
}

/** Headers without a status: one that came in headers a body follows is ignored. */
export function withoutStatus(headers: Headers): Headers {
  const out = new Headers(headers);
  for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) out.delete(name);
  return out;
}

function copyInto(target: Headers, headers: http2.IncomingHttpHeaders): Headers {
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":")) continue;
    if (value !== undefined) target.set(name, Array.isArray(value) ? value.join(", ") : String(value));
  }
  return target;
}

/** A reset or broken stream as gRPC status (as connect maps them). */
function errorOfStream(h2: http2.ClientHttp2Stream, error?: Error): ConnectError {
  const rst = h2.rstCode;
  if (rst !== undefined && rst !== http2.constants.NGHTTP2_NO_ERROR) return errorOfReset(rst, error);
  return new ConnectError(
    `the HTTP/2 stream failed: ${error?.message ?? "closed"}`,
    isBroken(error) ? Code.Unavailable : Code.Internal,
    undefined,
    undefined,
    error,
  );
}

/** A connection that broke under the stream. */
function isBroken(error: Error | undefined): boolean {
  return !!error && /ECONNRESET|EPIPE|ERR_HTTP2_(STREAM_CANCEL|GOAWAY_SESSION|SESSION_ERROR|INVALID_SESSION)/.test((error as { code?: string }).code ?? "");
}

/** A stream reset with HTTP/2 error code `rst` as gRPC status (as connect maps them). */
export function errorOfReset(rst: number, cause?: Error): ConnectError {
  const c = http2.constants;
  const code =
    rst === c.NGHTTP2_REFUSED_STREAM
      ? Code.Unavailable
      : rst === c.NGHTTP2_CANCEL
        ? Code.Canceled
        : rst === c.NGHTTP2_ENHANCE_YOUR_CALM
          ? Code.ResourceExhausted
          : rst === c.NGHTTP2_INADEQUATE_SECURITY || rst === c.NGHTTP2_HTTP_1_1_REQUIRED
            ? Code.PermissionDenied
            : isBroken(cause)
              ? Code.Unavailable
              : Code.Internal;
  return new ConnectError(`the HTTP/2 stream was reset (code ${rst})`, code, undefined, undefined, cause);
}

/** Resolves when the stream can take more bytes; rejects when it closes first. */
function drained(h2: http2.ClientHttp2Stream): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      h2.off("drain", done);
      h2.off("close", done);
      if (h2.destroyed) reject(new ConnectError("the call ended while sending", Code.Canceled));
      else resolve();
    };
    h2.once("drain", done);
    h2.once("close", done);
  });
}
