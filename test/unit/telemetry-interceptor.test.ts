/** The telemetry interceptor's account of how a server stream ended: finished, cancelled or failed. */
import { Code, ConnectError, createContextValues, type StreamResponse, type UnaryRequest } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createTelemetryInterceptor, routineCall } from "../../services/common/interceptors.js";
import { RpcMetrics } from "../../services/common/metrics.js";

/** A call of the test service's `method`, as the interceptor sees it. */
const request = (method: string) =>
  ({
    service: { typeName: "lclstream.test.v1.TestService" },
    method: { name: method },
    signal: new AbortController().signal,
    contextValues: createContextValues(),
  }) as unknown as UnaryRequest;

/** Runs one server-streaming call through the interceptor, its messages failing with `error` after one; returns the log lines and the calls counter. */
async function streamEndingWith(error: unknown) {
  const lines: { level: number; code: string; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const metrics = new RpcMetrics("test");
  const interceptor = createTelemetryInterceptor(logger, metrics);
  async function* messages() {
    yield {};
    throw error;
  }
  const res = (await interceptor(async () => ({ stream: true, message: messages() }) as never)(request("Watch"))) as StreamResponse;
  await expect(
    (async () => {
      for await (const _ of res.message);
    })(),
  ).rejects.toBeDefined();
  const calls = (await metrics.registry.getSingleMetric("lclstream_rpc_calls_total")!.get()).values;
  return { lines, codes: calls.map((v) => v.labels.code) };
}

/** Runs one unary call through the interceptor at log level debug; the handler marks it routine, then fails with `error` if given. */
async function routineUnary(error?: unknown) {
  const lines: { level: number; code: string; msg: string }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const interceptor = createTelemetryInterceptor(logger, new RpcMetrics("test"));
  const call = interceptor(async (r) => {
    r.contextValues.set(routineCall, true);
    if (error) throw error;
    return { stream: false, message: {} } as never;
  })(request("Ack"));
  await (error ? expect(call).rejects.toBeDefined() : call);
  return lines.map((l) => [l.level, l.msg]);
}

describe("the telemetry interceptor", () => {
  it("logs a routine call's success at debug, and its failure as any other", async () => {
    expect(await routineUnary()).toEqual([[20, "call finished"]]);
    expect(await routineUnary(new ConnectError("no such group", Code.InvalidArgument))).toEqual([[40, "call failed"]]);
  });

  it("counts a stream whose caller went away while the server wrote as cancelled, not as an internal error", async () => {
    const gone = Object.assign(new Error("The stream has been destroyed"), { code: "ERR_HTTP2_INVALID_STREAM" });
    const { lines, codes } = await streamEndingWith(gone);
    expect(codes).toEqual(["Canceled"]);
    expect(lines.map((l) => [l.level, l.code, l.msg])).toEqual([[30, "Canceled", "call cancelled"]]);
  });

  it("still logs any other unknown error as an internal error", async () => {
    const { lines, codes } = await streamEndingWith(new TypeError("x is undefined"));
    expect(codes).toEqual(["Internal"]);
    expect(lines.map((l) => [l.level, l.code])).toEqual([[50, "Internal"]]);
  });

  it("keeps a handler's own error code", async () => {
    const { lines, codes } = await streamEndingWith(new ConnectError("no such stream", Code.NotFound));
    expect(codes).toEqual(["NotFound"]);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([[40, "call failed"]]);
  });
});
