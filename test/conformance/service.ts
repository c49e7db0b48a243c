/**
 * The suite's ConformanceService, as docs/testing_servers.md of
 * connectrpc.com/conformance describes it: every call echoes what it received
 * (headers, timeout, requests) and answers as the request's response
 * definition says (data, headers, trailers, delays, an error). Unimplemented
 * is left unimplemented, for the framework to refuse.
 */
import { create } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  BidiStreamRequestSchema,
  ClientStreamRequestSchema,
  ConformancePayload_ConnectGetInfoSchema,
  ConformancePayload_RequestInfoSchema,
  ConformancePayloadSchema,
  ConformanceService,
  HeaderSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  type ConformancePayload_RequestInfo,
  type Header,
  type StreamResponseDefinition,
  type UnaryResponseDefinition,
} from "./gen/connectrpc/conformance/v1/service_pb.js";
import { ByteParts } from "../../services/common/byte-parts.js";
import { appendHeaders, errorFromProto, sleep, toProtoHeaders } from "./protocol.js";

/**
 * The request as generated code types it. The direct data path (direct-grpc.ts)
 * hands a request that is one large bytes field over as ByteParts in place of
 * the Uint8Array, without copying it (decodeFrame in grpc-frames.ts); its
 * handlers take that into account, and so does this one, before echoing it.
 */
function plain<T extends object>(message: T): T {
  const fields = message as Record<string, unknown>;
  for (const [name, value] of Object.entries(fields)) {
    if (value instanceof ByteParts) fields[name] = value.contiguous();
    const oneof = value as { case?: string; value?: unknown } | undefined;
    if (oneof && typeof oneof === "object" && "case" in oneof && oneof.value instanceof ByteParts)
      fields[name] = { case: oneof.case, value: oneof.value.contiguous() };
  }
  return message;
}

function requestInfo(ctx: HandlerContext, requests: Any[]): ConformancePayload_RequestInfo {
  const timeoutMs = ctx.timeoutMs();
  return create(ConformancePayload_RequestInfoSchema, {
    requestHeaders: toProtoHeaders(ctx.requestHeader),
    requests,
    ...(timeoutMs !== undefined ? { timeoutMs: BigInt(timeoutMs) } : {}),
    ...(ctx.requestMethod === "GET" ? { connectGetInfo: create(ConformancePayload_ConnectGetInfoSchema, { queryParams: queryParams(ctx.url) }) } : {}),
  });
}

function queryParams(url: string): Header[] {
  const params = new Map<string, string[]>();
  new URL(url, "https://localhost").searchParams.forEach((value, name) => params.set(name, [...(params.get(name) ?? []), value]));
  return [...params].map(([name, value]) => create(HeaderSchema, { name, value }));
}

/** Unary, IdempotentUnary and ClientStream: one answer, after all requests. */
async function unaryAnswer(definition: UnaryResponseDefinition | undefined, requests: Any[], ctx: HandlerContext) {
  appendHeaders(ctx.responseHeader, definition?.responseHeaders ?? []);
  appendHeaders(ctx.responseTrailer, definition?.responseTrailers ?? []);
  const info = requestInfo(ctx, requests);
  // An error is returned at once; only a response is delayed (as the reference server does).
  if (definition?.response.case === "error") {
    const error = definition.response.value;
    error.details.push(anyPack(ConformancePayload_RequestInfoSchema, info));
    throw errorFromProto(error);
  }
  await sleep(definition?.responseDelayMs ?? 0, ctx.signal);
  return {
    payload: create(ConformancePayloadSchema, {
      requestInfo: info,
      ...(definition?.response.case === "responseData" ? { data: definition.response.value } : {}),
    }),
  };
}

/** The stream's error, with the request info when no response carried it. */
function streamError(definition: StreamResponseDefinition, info: ConformancePayload_RequestInfo, responsesSent: number) {
  const error = definition.error!;
  if (responsesSent === 0) error.details.push(anyPack(ConformancePayload_RequestInfoSchema, info));
  return errorFromProto(error);
}

export const conformanceService: Omit<ServiceImpl<typeof ConformanceService>, "unimplemented"> = {
  unary: (req, ctx) => unaryAnswer(req.responseDefinition, [anyPack(UnaryRequestSchema, plain(req))], ctx),

  idempotentUnary: (req, ctx) => unaryAnswer(req.responseDefinition, [anyPack(IdempotentUnaryRequestSchema, plain(req))], ctx),

  async clientStream(requests, ctx) {
    let definition: UnaryResponseDefinition | undefined;
    const received: Any[] = [];
    for await (const req of requests) {
      if (received.length === 0) definition = req.responseDefinition;
      received.push(anyPack(ClientStreamRequestSchema, plain(req)));
    }
    return unaryAnswer(definition, received, ctx);
  },

  async *serverStream(req, ctx) {
    const definition = req.responseDefinition;
    appendHeaders(ctx.responseHeader, definition?.responseHeaders ?? []);
    appendHeaders(ctx.responseTrailer, definition?.responseTrailers ?? []);
    const info = requestInfo(ctx, [anyPack(ServerStreamRequestSchema, plain(req))]);
    let sent = 0;
    for (const data of definition?.responseData ?? []) {
      await sleep(definition!.responseDelayMs, ctx.signal);
      yield { payload: create(ConformancePayloadSchema, { data, ...(sent === 0 ? { requestInfo: info } : {}) }) };
      sent++;
    }
    if (definition?.error) throw streamError(definition, info, sent);
  },

  async *bidiStream(requests, ctx) {
    let definition: StreamResponseDefinition | undefined;
    let fullDuplex = false;
    let first = true;
    let sent = 0;
    // Requests not yet echoed: all of them (half duplex), or those since the last response (full duplex).
    let pending: Any[] = [];
    for await (const req of requests) {
      if (first) {
        first = false;
        definition = req.responseDefinition;
        fullDuplex = req.fullDuplex;
        appendHeaders(ctx.responseHeader, definition?.responseHeaders ?? []);
        appendHeaders(ctx.responseTrailer, definition?.responseTrailers ?? []);
      }
      pending.push(anyPack(BidiStreamRequestSchema, plain(req)));
      if (!fullDuplex) continue;
      const data = definition?.responseData[sent];
      // Nothing left to answer with: stop reading, and end (with the error, if one is asked for).
      if (data === undefined) break;
      await sleep(definition!.responseDelayMs, ctx.signal);
      // The first response echoes everything; later ones only the requests since the previous one.
      const info = sent === 0 ? requestInfo(ctx, pending) : create(ConformancePayload_RequestInfoSchema, { requests: pending });
      yield { payload: create(ConformancePayloadSchema, { data, requestInfo: info }) };
      sent++;
      pending = [];
    }
    // Half duplex: every response now; full duplex: those asked for beyond the requests.
    const info = requestInfo(ctx, pending);
    for (const data of definition?.responseData.slice(sent) ?? []) {
      await sleep(definition!.responseDelayMs, ctx.signal);
      yield { payload: create(ConformancePayloadSchema, { data, ...(sent === 0 ? { requestInfo: info } : {}) }) };
      sent++;
    }
    if (definition?.error) throw streamError(definition, info, sent);
  },
};

/** Every procedure of the service, `/connectrpc.conformance.v1.ConformanceService/Method`. */
export const conformanceProcedures = ConformanceService.methods.map((m) => `/${ConformanceService.typeName}/${m.name}`);

/** The methods with an implementation (all but Unimplemented), by proto name. */
export const implementedMethods = ConformanceService.methods.filter((m) => m.localName in conformanceService).map((m) => m.name);
