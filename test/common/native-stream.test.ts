/**
 * The native module's own keepalive, on a Subscribe and on a Publish: a
 * server that goes silent (here, a proxy between the two that stops passing
 * bytes either way) ends the call as UNAVAILABLE after an unanswered PING; a
 * quiet server that answers keeps it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BufferService, type SubscribeResponse } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { build, type BufferServer } from "../../services/buffer/server.js";
import { createMeshTransport } from "../../services/common/client.js";
import { createNativeStreamCall, nativeStreamModule } from "../../services/common/native-stream.js";
import { makeBatch, publishMessages } from "../helpers/buffer.js";
import { type FreezingProxy, startFreezingProxy } from "../helpers/freezing-proxy.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";

describe.skipIf(process.env.LCLSTREAM_NATIVE === "0")("the native module's keepalive", () => {
  let pki: TestPki;
  let stateDir: string;
  let buffer: BufferServer;
  let proxy: FreezingProxy;

  beforeAll(async () => {
    if (!nativeStreamModule()) throw new Error("the native module is not built: run `npm run build:native` (or set LCLSTREAM_NATIVE=0)");
    pki = await createTestPki();
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-native-"));
    buffer = await build({ stateDir, submitters: ["user/alice"] }, { tls: pki.server });
    proxy = await startFreezingProxy(buffer.url);
  });
  afterAll(async () => {
    proxy?.close();
    await buffer?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const alice = () => createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: pki.alice }));
  /** Calls through the proxy, pinging after 100 ms of silence and giving up 200 ms later. */
  const throughProxy = () =>
    createNativeStreamCall(nativeStreamModule()!, {
      baseUrl: proxy.url,
      tls: pki.alice,
      maxMessageBytes: 1 << 20,
      streamWindowBytes: 1 << 20,
      connectionWindowBytes: 1 << 21,
      keepaliveIntervalMs: 100,
      keepaliveTimeoutMs: 200,
    });

  it("ends a Subscribe whose server went silent as UNAVAILABLE, and keeps one whose quiet server answers", async () => {
    proxy.frozen = false;
    const client = alice();
    const { stream, publishToken } = await client.createStream({ stream: {} });
    await client.publish(publishMessages(stream!.name, publishToken, 0, 0, 1));
    const subscribe = throughProxy();
    const request = async function* () {
      yield { stream: stream!.name, consumerGroup: "default" };
    };
    const res = await subscribe(BufferService.method.subscribe, undefined, undefined, undefined, request());
    const responses = res.message[Symbol.asyncIterator]();
    const next = async () => (await responses.next()).value as SubscribeResponse;
    expect((await next()).kind.case).toBe("started");
    expect((await next()).seq).toBe(1n);
    // Quiet for ten PING intervals, answered: the call lives, and the next batch arrives.
    await new Promise((r) => setTimeout(r, 1000));
    await client.publish(publishMessages(stream!.name, publishToken, 0, 1, 2));
    let r = await next();
    while (r.kind.case !== "batch") r = await next();
    expect(r.seq).toBe(2n);
    // Silent: the PING goes unanswered and the call ends, saying why.
    proxy.frozen = true;
    const started = Date.now();
    const error = ConnectError.from(
      await (async () => {
        for (;;) await next();
      })().catch((e: unknown) => e),
    );
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/stopped answering: no reply to an HTTP\/2 PING in 200 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("ends a Publish whose server went silent as UNAVAILABLE, after a quiet spell the server answered", async () => {
    proxy.frozen = false;
    const client = alice();
    const { stream, publishToken } = await client.createStream({ stream: {} });
    let more!: () => void;
    const quiet = new Promise<void>((resolve) => (more = resolve));
    async function* requests() {
      yield { kind: { case: "open" as const, value: { stream: stream!.name, producerRank: 0, publishToken } } };
      yield { kind: { case: "batch" as const, value: makeBatch(stream!.name, 0, 0) } };
      await quiet;
      yield { kind: { case: "batch" as const, value: makeBatch(stream!.name, 0, 1) } };
      await new Promise(() => undefined); // a producer with nothing more to send, for now
    }
    const call = throughProxy()(BufferService.method.publish, undefined, undefined, undefined, requests());
    const published = async () => (await client.getStream({ name: stream!.name })).stream!.metrics!.publishedBatches;
    await expect.poll(published).toBe(1n);
    // Quiet for ten PING intervals, answered: the call lives, and the next batch arrives.
    await new Promise((r) => setTimeout(r, 1000));
    more();
    await expect.poll(published).toBe(2n);
    // Silent: the PING goes unanswered and the call ends, saying why.
    proxy.frozen = true;
    const started = Date.now();
    const error = ConnectError.from(await call.then(() => undefined).catch((e: unknown) => e));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/stopped answering: no reply to an HTTP\/2 PING in 200 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
