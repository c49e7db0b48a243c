/**
 * The native module serving (native-server.ts) beyond what the data-path
 * tests in direct-grpc.test.ts cover on every pairing: a call it does not
 * serve, a client that goes silent mid-call, and a connection that never
 * says anything while the server shuts down.
 */
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DescMethodStreaming } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { createNativeStreamCall, nativeStreamModule } from "../../services/common/native-stream.js";
import { makeBatch } from "../helpers/buffer.js";
import { type FreezingProxy, startFreezingProxy } from "../helpers/freezing-proxy.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";

describe.skipIf(process.env.LCLSTREAM_NATIVE === "0")("the native module serving the data path", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let proxy: FreezingProxy;
  // What the server's Subscribe saw: its signal's reason once the call ended.
  let ended: Promise<unknown>;
  let end!: (reason: unknown) => void;

  beforeAll(async () => {
    if (!nativeStreamModule()) throw new Error("the native module is not built: run `npm run build:native` (or set LCLSTREAM_NATIVE=0)");
    pki = await createTestPki();
    server = await startServer(pki, {
      // The server pings a connection quiet for 100 ms, and gives up on it 200 ms later.
      keepaliveIntervalMs: 100,
      keepaliveTimeoutMs: 200,
      services: [
        {
          ...serve(BufferService, {
            async *subscribe(_request, ctx) {
              yield { seq: 1n, kind: { case: "batch", value: makeBatch("streams/s", 0, 1, 1, 1024) } };
              await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
              end(ctx.signal.reason);
            },
            getStream: () => ({}),
          }),
          direct: ["Subscribe"],
        },
      ],
    });
    proxy = await startFreezingProxy(server.url);
  });
  afterAll(async () => {
    proxy?.close();
    await server?.close();
  });

  /** A native call through the proxy whose client would wait a minute before it pinged. */
  const throughProxy = () =>
    createNativeStreamCall(nativeStreamModule()!, {
      baseUrl: proxy.url,
      tls: pki.alice,
      maxMessageBytes: 1 << 20,
      streamWindowBytes: 1 << 20,
      connectionWindowBytes: 1 << 21,
      keepaliveIntervalMs: 60_000,
    });
  const one = async function* <T>(value: T) {
    yield value;
  };

  it("answers a call it does not serve as UNIMPLEMENTED, saying where to make it", async () => {
    proxy.frozen = false;
    const getStream = BufferService.method.getStream as unknown as DescMethodStreaming;
    const error = ConnectError.from(await throughProxy()(getStream, undefined, undefined, undefined, one({ name: "streams/s" })).catch((e: unknown) => e));
    expect(error.code).toBe(Code.Unimplemented);
    expect(error.rawMessage).toMatch(/GetStream is not served on a native data-path connection; call it over a regular connection/);
  });

  it("ends a call whose client went silent: the server's PING goes unanswered, and the handler sees the client gone", async () => {
    proxy.frozen = false;
    ended = new Promise((resolve) => (end = resolve));
    const res = await throughProxy()(BufferService.method.subscribe, undefined, undefined, undefined, one({ stream: "streams/s", consumerGroup: "g" }));
    const responses = res.message[Symbol.asyncIterator]();
    expect(((await responses.next()).value as { seq: bigint }).seq).toBe(1n);
    // Quiet for several PING intervals, answered: the call lives.
    await new Promise((r) => setTimeout(r, 600));
    expect(await Promise.race([ended, "open"])).toBe("open");
    proxy.frozen = true;
    const started = Date.now();
    const reason = ConnectError.from(await ended);
    expect(reason.code).toBe(Code.Canceled);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("does not wait for a connection that never speaks when it shuts down", async () => {
    const silent = net.connect(Number(new URL(server.url).port), "127.0.0.1");
    await new Promise((resolve) => silent.once("connect", resolve));
    const closed = new Promise((resolve) => silent.once("close", resolve));
    const started = Date.now();
    await server.close();
    await closed;
    // Well inside the 2 s grace it gives calls, and the 10 s a handshake may take.
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
