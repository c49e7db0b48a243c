/**
 * The server end of the native module (native/src/stream-call.cc): a
 * data-path call (Publish, Subscribe) from this project's native client is
 * served on a thread of its own, TLS and HTTP/2 included, as the client
 * makes it; every other connection goes to Node's HTTP/2 server as before.
 *
 * The listener hands each connection to the module first. The module peeks
 * at the client's TLS hello and takes the connection only when it offers the
 * module's ALPN marker, which only its client offers (one call per
 * connection); it completes the handshake with the server's certificate and
 * CAs and reports the client's certificate. The call is then served by the
 * same code as a call on Node's HTTP/2 (direct-grpc.ts): the same
 * interceptors, identity, status and errors; only the bytes move natively.
 *
 * Why: Node's TLS and HTTP/2 cost the buffer most of its CPU on the data
 * path (bench/README.md); here each message is read from the decrypted
 * records into memory of its own, and sent from the memory it is in.
 */
import type { Socket } from "node:net";
import { Code, ConnectError, type ContextValues, createContextValues } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Logger } from "pino";
import { AsyncQueue } from "./async-queue.js";
import { releasable } from "./byte-parts.js";
import { isGrpcContentType, requestCompressed, requestTooLarge, requestTruncated, type ServerCallWire } from "./direct-grpc.js";
import { type NativeCall, type NativeEvent, type NativeModule, type NativeServingLimits, requestSender } from "./native-stream.js";
import { tlsPeerKey, tlsPeerOfCertificate } from "./peer.js";
import type { CertMaterial } from "./pki.js";

/** Options of {@link createNativeServing}. */
export interface NativeServingOptions {
  native: NativeModule;
  /** The server's current certificate, key and CAs (read for each connection, so a renewal applies). */
  tls: () => CertMaterial;
  /** The current revocation list (PEM), if the server has one: revoked clients are refused in the handshake, as Node's server refuses them. */
  crlPem: () => string | undefined;
  trustDomain: string;
  limits: NativeServingLimits;
  /** The calls it may serve: the server's direct methods. */
  direct: { serves(path: string): boolean; serve(wire: ServerCallWire): Promise<void> };
  /** Takes a connection the module declined: Node's HTTP/2 server. */
  decline: (socket: Socket) => void;
  /** Told the size of each received message whose memory was given back early. */
  onReleased?: (bytes: number) => void;
  logger: Logger;
}

/** Connections offered to the native module, and a way to end them all. */
export function createNativeServing(options: NativeServingOptions) {
  // Every connection the module holds: whether it took it, and when its thread ends.
  const open = new Map<NativeCall, { accepted: boolean; finished: Promise<void> }>();
  let closing = false;
  return {
    /** Offers an accepted connection (not yet read from) to the module. */
    connection(socket: Socket) {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (closing || typeof fd !== "number" || fd < 0) return options.decline(socket);
      const tls = options.tls();
      // Read now: Node's socket is destroyed once the module takes the connection.
      const address = socket.remoteAddress;
      let call!: NativeCall;
      let wire: ReturnType<typeof nativeWire> | undefined;
      let certificate: Buffer | undefined;
      let ended!: () => void;
      const finished = new Promise<void>((resolve) => (ended = resolve));
      const onEvents = (events: NativeEvent[]) => {
        for (const e of events) {
          if (e.kind === "declined") {
            if (closing) socket.destroy();
            else options.decline(socket);
          } else if (e.kind === "accepted") {
            // The thread has a descriptor of its own: closing Node's leaves the connection open.
            socket.destroy();
            open.get(call)!.accepted = true;
          } else if (e.kind === "peer") {
            certificate = e.certificate;
          } else if (e.kind === "headers" && !wire) {
            wire = startCall(call, e, certificate, address, options);
          } else if (e.kind === "finished") {
            wire?.finished();
            open.delete(call);
            ended();
          } else if (wire) {
            wire.event(e);
          } else if (e.kind === "error") {
            options.logger.debug({ reason: e.reason, address }, `native connection ended before its call: ${e.message}`);
          }
        }
      };
      call = options.native.serve(
        {
          fd,
          caPem: tls.caPem,
          certPem: tls.certPem,
          keyPem: tls.keyPem,
          crlPem: options.crlPem(),
          ...options.limits,
        },
        onEvents,
      );
      open.set(call, { accepted: false, finished });
    },
    /** Takes no more connections, waits up to `graceMs` for calls to end (they end on the server's shutdown signal), then resets the rest. */
    async close(graceMs: number) {
      closing = true;
      const all = Promise.all([...open.values()].map((c) => c.finished));
      // A connection still silent has no call to end.
      for (const [call, { accepted }] of open) if (!accepted) call.cancel();
      const force = setTimeout(() => {
        for (const call of open.keys()) call.cancel();
      }, graceMs);
      await all;
      clearTimeout(force);
    },
  };
}

/** Starts serving the call whose request headers arrived; a call it does not serve is answered UNIMPLEMENTED. */
function startCall(
  call: NativeCall,
  request: { headers: [name: string, value: string][]; endStream: boolean },
  certificate: Buffer | undefined,
  address: string | undefined,
  options: NativeServingOptions,
) {
  const pseudo = new Map(request.headers.filter(([name]) => name.startsWith(":")));
  const path = pseudo.get(":path") ?? "";
  const requestHeader = new Headers();
  for (const [name, value] of request.headers) if (!name.startsWith(":")) requestHeader.append(name, value);
  const contextValues = createContextValues();
  if (certificate) contextValues.set(tlsPeerKey, tlsPeerOfCertificate(certificate, options.trustDomain, address));
  const wire = nativeWire(call, path, requestHeader, contextValues, options.limits.maxMessageBytes, {
    release(buffer) {
      const bytes = buffer.byteLength;
      options.native.release(buffer);
      options.onReleased?.(bytes);
    },
    hold: (buffer) => options.native.hold(buffer),
    unhold: (buffer) => options.native.unhold(buffer),
  });
  if (request.endStream) wire.event({ kind: "end" });
  if (pseudo.get(":method") !== "POST" || !isGrpcContentType(requestHeader.get("content-type")) || !options.direct.serves(path)) {
    // Only this project's client comes here, and only for the data path.
    const refusal = new ConnectError(`${path} is not served on a native data-path connection; call it over a regular connection`, Code.Unimplemented);
    const status: Record<string, string> = { "content-type": "application/grpc+proto" };
    setTrailerStatus(new Headers(), refusal).forEach((value, name) => (status[name] = value));
    wire.trailersOnly(status);
    return wire;
  }
  void options.direct.serve(wire).catch((error: unknown) => {
    options.logger.error({ err: error, procedure: path }, "serving a native gRPC call failed");
    call.cancel();
  });
  return wire;
}

/** A call's side of a connection the native module serves, and what its thread reports about it. */
function nativeWire(
  call: NativeCall,
  path: string,
  requestHeader: Headers,
  contextValues: ContextValues,
  maxMessageBytes: number,
  memory: { release(buffer: ArrayBuffer): void; hold(buffer: ArrayBuffer): void; unhold(buffer: ArrayBuffer): void },
) {
  const requests = new AsyncQueue<Uint8Array[]>();
  const response = requestSender(call);
  const closeListeners: (() => void)[] = [];
  let requestEnded = false;
  let destroyed = false;
  const endRequest = () => {
    requestEnded = true;
    requests.close();
  };
  const closed = () => {
    if (destroyed) return;
    destroyed = true;
    if (!requestEnded) requests.fail(new ConnectError("the client cancelled the call", Code.Canceled));
    for (const listener of closeListeners.splice(0)) listener();
  };
  return {
    path,
    requestHeader,
    contextValues,
    onClose(listener: () => void) {
      if (destroyed) listener();
      else closeListeners.push(listener);
    },
    async *requests(signal: AbortSignal) {
      for await (const parts of requests.drain(signal)) {
        // The thread opens the window again while fewer than two messages wait here.
        call.taken();
        yield parts;
      }
    },
    sendHeaders: (headers: Record<string, string>) => call.respond([[":status", "200"], ...Object.entries(headers)], false),
    send: (parts: Uint8Array[], writeAhead: number, signal: AbortSignal, onSent?: () => void) => response.send(parts, false, writeAhead, signal, onSent),
    end: (trailers: Record<string, string>) => call.finish(Object.entries(trailers)),
    trailersOnly: (headers: Record<string, string>) => call.respond([[":status", "200"], ...Object.entries(headers)], true),
    get destroyed() {
      return destroyed;
    },
    event(e: NativeEvent) {
      switch (e.kind) {
        case "message":
          // The memory is the message's alone: given back once the batch in it is no longer held (Lease).
          releasable(e.buffer!, () => memory.release(e.buffer!), { hold: () => memory.hold(e.buffer!), unhold: () => memory.unhold(e.buffer!) });
          requests.push([new Uint8Array(e.buffer!, 0, e.length)]);
          break;
        case "end":
          endRequest();
          break;
        case "trailers":
          if (e.endStream) endRequest();
          break;
        case "copied":
          response.copied(e.copied);
          break;
        case "error":
          if (e.reason === "too-large") requests.fail(requestTooLarge(e.length, maxMessageBytes));
          else if (e.reason === "compressed") requests.fail(requestCompressed());
          else if (e.reason === "truncated") requests.fail(requestTruncated());
          else closed(); // the connection broke
          break;
        case "closed":
          closed();
          break;
      }
    },
    /** The thread ended: nothing more is sent or read. */
    finished() {
      response.finished();
      closed();
    },
  } satisfies ServerCallWire & Record<string, unknown>;
}
