/**
 * Streaming calls on the data path made by the native module
 * (native/src/stream-call.cc): TLS and HTTP/2 on a thread of its own,
 * each response message handed over whole, in memory of its own that is
 * reused once it is collected, and a streamed request (Publish) sent from
 * the memory its messages are in. Everything a call means (status, errors,
 * deadlines, cancellation) is decided here, as direct-transport.ts decides
 * it for Node's HTTP/2; the two are tested against each other.
 *
 * The module is built by `npm ci` when a compiler and Node's headers are
 * there (scripts/build-native.js); without it, or with LCLSTREAM_NATIVE=0,
 * calls take Node's HTTP/2 (direct-transport.ts) and work the same.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { create, fromBinary, type DescMessage, type DescMethodStreaming, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamResponse } from "@connectrpc/connect";
import { validateResponse } from "@connectrpc/connect/protocol-grpc";
import { AsyncQueue } from "./async-queue.js";
import { errorOfReset, grpcRequestHeaders, throwTrailerStatus, watchAbortAndDeadline, withoutStatus } from "./direct-transport.js";
import { encodeFrameParts, writeAheadBytes } from "./grpc-frames.js";
import { packageInfo } from "./package-info.js";
import type { CertMaterial } from "./pki.js";

type HeaderList = [name: string, value: string][];

/** The code of an error's cause when the server closed the connection after the handshake without answering. */
export const closedUnansweredCode = "ERR_LCLSTREAM_CLOSED_UNANSWERED";

/** What the call's thread reports, in order. */
export type NativeEvent =
  | { kind: "headers" | "trailers"; headers: HeaderList; endStream: boolean }
  /** A message of `length` bytes at the start of `buffer`, or of the borrowed slot's buffer given before (`slot` >= 0). */
  | { kind: "message"; length: number; slot: number; buffer?: ArrayBuffer }
  | { kind: "closed"; errorCode: number }
  | { kind: "error"; reason: "connect" | "tls" | "refused" | "http2" | "too-large" | "compressed" | "closed" | "truncated"; message: string; length: number }
  /** A streamed request's bytes copied out of JavaScript's memory so far (asked for by awaitCopied). */
  | { kind: "copied"; copied: number }
  /** The thread is done: it reads none of the request's memory any more. */
  | { kind: "finished" }
  /** Serving: the connection is (not) the module's to serve (it is Node's server's if declined). */
  | { kind: "accepted" | "declined" }
  /** Serving: the certificate (DER) the client's TLS handshake was verified with. */
  | { kind: "peer"; certificate: Buffer }
  /** Serving: the request ended. */
  | { kind: "end" };

/** A call on its thread, as its JavaScript side drives it. */
export interface NativeCall {
  /** The caller took a message: the reader may open the window again. */
  taken(): void;
  /** Resets the stream and closes the connection. */
  cancel(): void;
  /** The caller is done with the borrowed message in `slot`: its memory may take another. */
  released(slot: number): void;
  /**
   * A streamed request's next bytes, sent from this memory (kept unchanged
   * until copied), and whether the request ends; returns the bytes copied so far.
   */
  write(chunks: Uint8Array[], end: boolean): number;
  /** True when `total` request bytes are copied; otherwise a "copied" event says when. */
  awaitCopied(total: number): boolean;
  /** Serving: the response's headers; `endStream` makes them the whole response (Trailers-Only). */
  respond(headers: HeaderList, endStream: boolean): void;
  /** Serving: the response ends with these trailers, after what was written. */
  finish(trailers: HeaderList): void;
}

/** What the native module offers. */
export interface NativeModule {
  open(
    options: {
      host: string;
      port: number;
      servername: string;
      authority: string;
      path: string;
      headers: HeaderList;
      body: Uint8Array;
      caPem: string;
      certPem?: string;
      keyPem?: string;
      streamWindowBytes: number;
      connectionWindowBytes: number;
      maxMessageBytes: number;
      /** 1: the caller is done with each message before it takes the next (see borrowedResponses). */
      borrowed: number;
      /** 1: the request is streamed with write(), and `body` is empty. */
      streamed?: number;
      keepaliveIntervalMs?: number;
      keepaliveTimeoutMs?: number;
    },
    onEvents: (events: NativeEvent[]) => void,
  ): NativeCall;
  /**
   * Serves a call on an accepted connection (`fd` stays the caller's; the
   * thread works on a copy of it): declined at once, untouched, unless the
   * client is this module's (it offered the module's ALPN marker).
   */
  serve(
    options: NativeServingLimits & {
      fd: number;
      caPem: string;
      certPem: string;
      keyPem: string;
      /** Revoked client certificates, refused in the handshake. */
      crlPem?: string;
    },
    onEvents: (events: NativeEvent[]) => void,
  ): NativeCall;
  /** Gives a message's memory back now (see Lease in byte-parts.ts): every view of `buffer` is empty after. */
  release(buffer: ArrayBuffer): void;
  /** Takes a message's memory off V8's count of external memory. */
  hold(buffer: ArrayBuffer): void;
  /** Puts a held message's memory back on V8's count (before `release`, or for the collector to free it). */
  unhold(buffer: ArrayBuffer): void;
}

/** The server's settings a connection the native module serves keeps to. */
export interface NativeServingLimits {
  streamWindowBytes: number;
  connectionWindowBytes: number;
  maxMessageBytes: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  handshakeTimeoutMs: number;
}

/** An addon `npm ci` built from native/ (`name`.node), or undefined when it was not built. */
export function nativeAddon<T>(name: string): T | undefined {
  try {
    return createRequire(import.meta.url)(join(packageInfo().root, `native/build/Release/${name}.node`)) as T;
  } catch {
    return undefined;
  }
}

let loaded: NativeModule | null | undefined;

/** The native module (Subscribe read and Publish sent on threads of their own), or undefined when it is not built or LCLSTREAM_NATIVE=0 turns it off. */
export function nativeStreamModule(): NativeModule | undefined {
  if (process.env.LCLSTREAM_NATIVE === "0") return undefined;
  if (loaded === undefined) loaded = nativeAddon<NativeModule>("lclstream_native") ?? null;
  return loaded ?? undefined;
}

/** Where and how a native call connects. */
export interface NativeTarget {
  baseUrl: string;
  tls: CertMaterial | Pick<CertMaterial, "caPem">;
  serverName?: string;
  maxMessageBytes: number;
  streamWindowBytes: number;
  connectionWindowBytes: number;
  /**
   * A PING after this long without a byte from the server (default 30 s, as
   * the TS client's sessions), and the call fails as UNAVAILABLE when the
   * PING goes unanswered for `keepaliveTimeoutMs` (default 15 s).
   */
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
}

/**
 * Makes streaming calls through the native module: server streams (one
 * request, a stream of responses) and client streams (a stream of requests,
 * sent as the input yields them, the next only while less than
 * `writeAheadBytes` wait to be sent: HTTP/2 flow control paces the caller).
 */
export function createNativeStreamCall(native: NativeModule, target: NativeTarget) {
  const url = new URL(target.baseUrl);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || 443);
  return async function stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    borrowed = false,
  ): Promise<StreamResponse<I, O>> {
    signal?.throwIfAborted();
    const streamed = method.methodKind !== "server_streaming";
    const body: Uint8Array[] = [];
    if (!streamed) for await (const init of input) body.push(...encodeFrameParts(method.input, create(method.input, init)));
    const headers = grpcRequestHeaders(header, timeoutMs, "lclstream-native");

    const events = new AsyncQueue<NativeEvent>();
    const call = native.open(
      {
        host,
        port,
        servername: target.serverName ?? host,
        authority: url.host,
        path: `/${method.parent.typeName}/${method.name}`,
        headers,
        body: Buffer.concat(body),
        caPem: target.tls.caPem,
        ...("certPem" in target.tls ? { certPem: target.tls.certPem, keyPem: target.tls.keyPem } : {}),
        streamWindowBytes: target.streamWindowBytes,
        connectionWindowBytes: target.connectionWindowBytes,
        maxMessageBytes: target.maxMessageBytes,
        borrowed: borrowed ? 1 : 0,
        streamed: streamed ? 1 : 0,
        keepaliveIntervalMs: target.keepaliveIntervalMs,
        keepaliveTimeoutMs: target.keepaliveTimeoutMs,
      },
      (list) => {
        for (const e of list) {
          if (e.kind === "copied") request.copied(e.copied);
          else if (e.kind === "finished") request.finished();
          else events.push(e);
        }
      },
    );
    const request = requestSender(call);
    // The first reason the call failed wins: abort, deadline, or what the reader reports.
    let ended = false;
    const fail = (error: ConnectError) => {
      if (ended) return;
      ended = true;
      call.cancel();
      events.fail(error);
    };
    const stopWatching = watchAbortAndDeadline(signal, timeoutMs, fail);
    const finish = () => {
      ended = true;
      stopWatching();
    };
    if (streamed) {
      void (async () => {
        for await (const init of input) {
          if (ended) return;
          await request.send(encodeFrameParts(method.input, create(method.input, init)), false);
        }
        await request.send([], true);
      })().catch((error: unknown) => fail(ConnectError.from(error)));
    }

    const pending = events.drain();
    const next = async (): Promise<NativeEvent> => {
      const r = await pending.next();
      if (r.done) throw new ConnectError("the native reader ended without a status", Code.Internal);
      const e = r.value;
      if (e.kind === "error") throw errorOfReader(e, target.maxMessageBytes);
      return e;
    };

    let responseHeader: Headers;
    let foundStatus: boolean;
    try {
      const first = await next();
      if (first.kind === "closed") throw errorOfReset(first.errorCode);
      if (first.kind !== "headers") throw new ConnectError(`protocol error: the server sent ${first.kind} before headers`, Code.Internal);
      const status = Number(first.headers.find(([name]) => name === ":status")?.[1] ?? 0);
      responseHeader = headersOf(first.headers);
      // Only a HEADERS frame that ends the stream is Trailers-Only.
      foundStatus = first.endStream && responseHeader.has("grpc-status");
      const validated = validateResponse(status, foundStatus ? responseHeader : withoutStatus(responseHeader));
      if (validated.headerError) throw validated.headerError;
    } catch (error) {
      fail(ConnectError.from(error));
      finish();
      await pending.return(undefined);
      throw error;
    }

    const trailer = new Headers();
    // The memory of each borrowed slot, as the reader first hands it over.
    const slots: ArrayBuffer[] = [];
    async function* read(): AsyncGenerator<MessageShape<O>> {
      try {
        for (;;) {
          const e = await next();
          if (e.kind === "message") {
            call.taken();
            if (e.slot >= 0 && e.buffer) slots[e.slot] = e.buffer;
            yield fromBinary(method.output, new Uint8Array(e.slot >= 0 ? slots[e.slot]! : e.buffer!, 0, e.length));
            // The caller asked for the next: it is done with this one.
            if (e.slot >= 0) call.released(e.slot);
          } else if (e.kind === "trailers") {
            headersOf(e.headers).forEach((value, name) => trailer.set(name, value));
          } else if (e.kind === "closed") {
            if (e.errorCode !== 0 && !trailer.has("grpc-status")) throw errorOfReset(e.errorCode);
            break;
          }
        }
        if (!foundStatus) throwTrailerStatus(trailer, responseHeader); // trailers-only: the status came with the headers
      } finally {
        if (!ended) call.cancel();
        finish();
      }
    }
    return { stream: true, service: method.parent, method, header: responseHeader, trailer, message: read() } as StreamResponse<I, O>;
  };
}

/**
 * The side in JavaScript of what a call streams out (a client's requests, a
 * server's responses): holds each message's memory until the thread has
 * copied it out, and makes the caller wait while more than the write-ahead
 * (`writeAheadBytes` unless given) waits to be sent.
 */
export function requestSender(call: NativeCall) {
  // Each message's parts, until the bytes copied pass its end.
  const held: { end: number; chunks: Uint8Array[]; onSent?: () => void }[] = [];
  let written = 0;
  let finished = false;
  let wake: (() => void) | undefined;
  const letGo = (copied: number) => {
    while (held.length > 0 && held[0]!.end <= copied) held.shift()!.onSent?.();
  };
  const woken = () => {
    wake?.();
    wake = undefined;
  };
  return {
    /**
     * Hands a message's parts over (`onSent` is called once the thread no
     * longer reads them); past the write-ahead, returns a promise that
     * resolves once the caller may send more.
     */
    send(chunks: Uint8Array[], end: boolean, writeAhead = writeAheadBytes, signal?: AbortSignal, onSent?: () => void): Promise<void> | undefined {
      if (finished) {
        onSent?.();
        return undefined;
      }
      for (const chunk of chunks) written += chunk.byteLength;
      held.push({ end: written, chunks, onSent });
      const copied = call.write(chunks, end);
      letGo(copied);
      // Past the bound, wait until half of it is sent: one wake-up for many messages, not one each.
      if (written - copied <= writeAhead || call.awaitCopied(written - writeAhead / 2)) return undefined;
      return new Promise<void>((resolve, reject) => {
        const aborted = () => reject(signal!.reason);
        if (signal?.aborted) return aborted();
        signal?.addEventListener("abort", aborted, { once: true });
        wake = () => {
          signal?.removeEventListener("abort", aborted);
          resolve();
        };
      });
    },
    copied(total: number) {
      letGo(total);
      woken();
    },
    /** The call is over: nothing more is sent, and no memory is read any more. */
    finished() {
      finished = true;
      for (const message of held.splice(0)) message.onSent?.();
      woken();
    },
  };
}

function headersOf(list: HeaderList): Headers {
  const out = new Headers();
  for (const [name, value] of list) if (!name.startsWith(":")) out.append(name, value);
  return out;
}

/** What the reader reported, as gRPC status (as direct-transport.ts maps Node's errors). */
function errorOfReader(e: Extract<NativeEvent, { kind: "error" }>, maxMessageBytes: number): ConnectError {
  switch (e.reason) {
    case "too-large":
      return new ConnectError(
        `a response message of ${e.length} bytes is larger than this client accepts (${maxMessageBytes} bytes); raise maxMessageBytes`,
        Code.ResourceExhausted,
      );
    case "compressed":
      return new ConnectError(e.message, Code.Internal);
    case "http2":
      return new ConnectError(e.message, Code.Internal);
    case "refused":
      // As client.ts tells it for Node's HTTP/2 (it explains what to do).
      return new ConnectError(e.message, Code.Unavailable, undefined, undefined, Object.assign(new Error(e.message), { code: closedUnansweredCode }));
    default:
      // connect, tls, closed: the connection could not be made or was lost.
      return new ConnectError(e.message, Code.Unavailable);
  }
}
