/**
 * The conformance suite's client under test (docs/testing_clients.md of
 * connectrpc.com/conformance): reads ClientCompatRequests from stdin, makes
 * each call with one of lclstream's client transports, and writes a
 * ClientCompatResponse per call to stdout (in completion order; calls run
 * concurrently). Exits at the end of stdin once every call has finished, or
 * at once on SIGTERM.
 *
 *   node dist/test/conformance/client.js --transport mesh|direct [--parallel N] [--reuse-connections]
 *
 * mesh:   createMeshTransport (services/common/client.ts): connect's gRPC
 *         transport over HTTP/2 and TLS 1.3 (its direct data path is only for
 *         the buffer's methods, so not used here).
 * direct: the hand-framed data path's calls (services/common/direct-transport.ts,
 *         createDirectStreamCall and createDirectUnaryCall) for every method,
 *         on connect's Http2SessionManager with the same TLS settings.
 */
import type * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMeshTransport } from "../../services/common/client.js";
import { createDirectStreamCall, createDirectUnaryCall } from "../../services/common/direct-transport.js";
import {
  ClientCompatRequestSchema,
  ClientCompatResponseSchema,
  ClientErrorResultSchema,
  ClientResponseResultSchema,
  type ClientCompatRequest,
  type ClientResponseResult,
} from "./gen/connectrpc/conformance/v1/client_compat_pb.js";
import { Codec, Compression, HTTPVersion, Protocol, StreamType } from "./gen/connectrpc/conformance/v1/config_pb.js";
import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayloadSchema,
  ConformanceService,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  UnimplementedRequestSchema,
  type BidiStreamRequest,
  type ConformancePayload,
} from "./gen/connectrpc/conformance/v1/service_pb.js";
import { appendHeaders, errorToProto, readSizeDelimited, sizeDelimited, sleep, toProtoHeaders, unpack } from "./protocol.js";

const { values: flags } = parseArgs({
  options: {
    transport: { type: "string", default: "mesh" },
    parallel: { type: "string", default: "8" },
    "reuse-connections": { type: "boolean", default: false },
  },
});
if (flags.transport !== "mesh" && flags.transport !== "direct") throw new Error(`--transport must be mesh or direct, not ${flags.transport}`);
const parallel = Math.max(1, Number(flags.parallel));

const defaultMaxMessageBytes = 64 * 1024 * 1024;

/** A transport of the chosen kind, for the server and TLS settings of `req`. */
function createTransport(req: ClientCompatRequest): Transport {
  if (req.protocol !== Protocol.GRPC) throw new Error(`protocol ${Protocol[req.protocol]} is not supported: gRPC only`);
  if (req.httpVersion !== HTTPVersion.HTTP_VERSION_2) throw new Error(`HTTP version ${HTTPVersion[req.httpVersion]} is not supported: HTTP/2 only`);
  if (req.codec !== Codec.PROTO) throw new Error(`codec ${Codec[req.codec]} is not supported: proto only`);
  if (req.compression !== Compression.IDENTITY && req.compression !== Compression.UNSPECIFIED) {
    throw new Error(`compression ${Compression[req.compression]} is not supported: identity only`);
  }
  if (req.serverTlsCert.length === 0) throw new Error("plaintext (h2c) is not supported: TLS only");
  const baseUrl = `https://${req.host.includes(":") ? `[${req.host}]` : req.host}:${req.port}`;
  const caPem = Buffer.from(req.serverTlsCert).toString();
  const clientCert = req.clientTlsCreds && { certPem: Buffer.from(req.clientTlsCreds.cert).toString(), keyPem: Buffer.from(req.clientTlsCreds.key).toString() };
  const maxMessageBytes = req.messageReceiveLimit > 0 ? req.messageReceiveLimit : defaultMaxMessageBytes;
  if (flags.transport === "mesh") return createMeshTransport({ baseUrl, tls: { caPem, ...clientCert }, maxMessageBytes });

  // The session options createMeshTransport uses, without its window tuning.
  const sessionOptions: http2.SecureClientSessionOptions = {
    ca: caPem,
    ...(clientCert ? { cert: clientCert.certPem, key: clientCert.keyPem } : {}),
    minVersion: "TLSv1.3",
  };
  const sessions = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000 }, sessionOptions);
  const stream = createDirectStreamCall(sessions, maxMessageBytes);
  const unary = createDirectUnaryCall(stream);
  return {
    unary: (method, signal, timeoutMs, header, message) => unary(method, signal, timeoutMs, header, message),
    stream: (method, signal, timeoutMs, header, input) => stream(method, signal, timeoutMs, header, input),
  };
}

/**
 * A new transport (so a new connection) for each call, as connect-es's own
 * conformance clients make them: a call's cancellation timing then also
 * covers connection setup, every run alike. With --reuse-connections, one
 * transport per server and client settings is shared by the calls to it.
 */
const transports = new Map<string, Transport>();
function transportFor(req: ClientCompatRequest): Transport {
  if (!flags["reuse-connections"]) return createTransport(req);
  const key = JSON.stringify([
    req.protocol,
    req.httpVersion,
    req.codec,
    req.compression,
    req.host,
    req.port,
    Buffer.from(req.serverTlsCert).toString("base64"),
    req.clientTlsCreds ? Buffer.from(req.clientTlsCreds.cert).toString("base64") : "",
    req.messageReceiveLimit,
  ]);
  let transport = transports.get(key);
  if (!transport) transports.set(key, (transport = createTransport(req)));
  return transport;
}

type ConformanceClient = Client<typeof ConformanceService>;

/** When to cancel: before closing the request stream, some ms after, or after some responses (-1: not). */
function cancelTiming(req: ClientCompatRequest) {
  const timing = req.cancel?.cancelTiming;
  return {
    beforeCloseSend: timing?.case === "beforeCloseSend",
    afterCloseSendMs: timing?.case === "afterCloseSendMs" ? timing.value : -1,
    afterNumResponses: timing?.case === "afterNumResponses" ? timing.value : -1,
  };
}

/** Call options recording the response headers and trailers in `result`. */
function callOptions(req: ClientCompatRequest, result: ClientResponseResult, signal: AbortSignal): CallOptions {
  const headers = new Headers();
  appendHeaders(headers, req.requestHeaders);
  return {
    headers,
    signal,
    ...(req.timeoutMs !== undefined ? { timeoutMs: req.timeoutMs } : {}),
    onHeader: (h) => (result.responseHeaders = toProtoHeaders(h)),
    onTrailer: (t) => (result.responseTrailers = toProtoHeaders(t)),
  };
}

/** Records a failed call: the error, and its metadata as trailers (and headers, when none came). */
function recordError(result: ClientResponseResult, error: unknown) {
  const e = ConnectError.from(error);
  result.error = errorToProto(e);
  if (result.responseHeaders.length === 0) result.responseHeaders = toProtoHeaders(e.metadata);
  result.responseTrailers = toProtoHeaders(e.metadata);
}

const payloadOf = (res: { payload?: ConformancePayload }) => res.payload ?? create(ConformancePayloadSchema);

async function invoke(client: ConformanceClient, req: ClientCompatRequest): Promise<ClientResponseResult> {
  const result = create(ClientResponseResultSchema);
  const controller = new AbortController();
  const cancel = cancelTiming(req);
  const options = callOptions(req, result, controller.signal);
  const record = (payload: ConformancePayload) => {
    result.payloads.push(payload);
    if (result.payloads.length === cancel.afterNumResponses) controller.abort();
  };
  try {
    switch (req.method) {
      case "Unary":
      case "IdempotentUnary":
      case "Unimplemented": {
        if (req.requestMessages.length !== 1) throw new Error(`a unary call takes one request, not ${req.requestMessages.length}`);
        const message = req.requestMessages[0]!;
        if (cancel.afterCloseSendMs >= 0) void sleep(cancel.afterCloseSendMs).then(() => controller.abort());
        if (req.method === "Unary") record(payloadOf(await client.unary(unpack(message, UnaryRequestSchema), options)));
        else if (req.method === "IdempotentUnary") record(payloadOf(await client.idempotentUnary(unpack(message, IdempotentUnaryRequestSchema), options)));
        else await client.unimplemented(unpack(message, UnimplementedRequestSchema), options);
        break;
      }
      case "ServerStream": {
        if (req.requestMessages.length !== 1) throw new Error(`a server stream takes one request, not ${req.requestMessages.length}`);
        const responses = client.serverStream(unpack(req.requestMessages[0]!, ServerStreamRequestSchema), options);
        if (cancel.afterCloseSendMs >= 0) void sleep(cancel.afterCloseSendMs).then(() => controller.abort());
        for await (const res of responses) record(payloadOf(res));
        break;
      }
      case "ClientStream": {
        const requests = req.requestMessages.map((m) => unpack(m, ClientStreamRequestSchema));
        const response = await client.clientStream(
          (async function* () {
            for (const message of requests) {
              await sleep(req.requestDelayMs);
              yield message;
            }
            if (cancel.beforeCloseSend) controller.abort();
            else if (cancel.afterCloseSendMs >= 0) void sleep(cancel.afterCloseSendMs).then(() => controller.abort());
          })(),
          options,
        );
        record(payloadOf(response));
        break;
      }
      case "BidiStream": {
        const requests = createWritableIterable<BidiStreamRequest>();
        const responses = client.bidiStream(requests, options)[Symbol.asyncIterator]();
        const fullDuplex = req.streamType === StreamType.FULL_DUPLEX_BIDI_STREAM;
        try {
          for (const message of req.requestMessages.map((m) => unpack(m, BidiStreamRequestSchema))) {
            await sleep(req.requestDelayMs);
            await requests.write(message);
            if (!fullDuplex) continue;
            if (cancel.afterNumResponses === 0) controller.abort();
            const next = await responses.next();
            if (!next.done) record(payloadOf(next.value));
          }
          if (cancel.beforeCloseSend) controller.abort();
          requests.close();
          if (cancel.afterCloseSendMs >= 0) void sleep(cancel.afterCloseSendMs).then(() => controller.abort());
          if (cancel.afterNumResponses === 0) controller.abort();
          for (;;) {
            const next = await responses.next();
            if (next.done) break;
            record(payloadOf(next.value));
          }
        } finally {
          requests.close();
        }
        break;
      }
      default:
        throw new Error(`unknown method ${req.method}`);
    }
  } catch (error) {
    recordError(result, error);
  }
  return result;
}

async function main() {
  process.once("SIGTERM", () => process.exit(0));
  const running = new Set<Promise<void>>();
  for await (const bytes of readSizeDelimited(process.stdin)) {
    const req = fromBinary(ClientCompatRequestSchema, bytes);
    const call = (async () => {
      const res = create(ClientCompatResponseSchema, { testName: req.testName });
      try {
        if (req.service !== undefined && req.service !== ConformanceService.typeName) throw new Error(`unknown service ${req.service}`);
        res.result = { case: "response", value: await invoke(createClient(ConformanceService, transportFor(req)), req) };
      } catch (error) {
        res.result = { case: "error", value: create(ClientErrorResultSchema, { message: error instanceof Error ? error.message : String(error) }) };
      }
      process.stdout.write(sizeDelimited(toBinary(ClientCompatResponseSchema, res)));
    })();
    running.add(call);
    void call.finally(() => running.delete(call));
    while (running.size >= parallel) await Promise.race(running);
  }
  await Promise.all(running);
  // Idle HTTP/2 sessions would keep the process up.
  process.stdout.write("", () => process.exit(0));
}

main().catch((error: unknown) => {
  process.stderr.write(`conformance client: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
