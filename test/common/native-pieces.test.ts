/**
 * The native module sends a large frame's bytes from JavaScript's memory (a
 * peer that allows large frames lets it): it must not say those bytes are
 * copied, which lets the caller reuse that memory, before OpenSSL has read
 * them. The server here stops reading for a while, so the socket fills and
 * bytes wait in the caller's memory; the caller zeroes every chunk the moment
 * it is told the chunk was copied, and the server must still receive the
 * original bytes.
 */
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { type NativeEvent, nativeStreamModule } from "../../services/common/native-stream.js";
import { createTestPki } from "../helpers/pki.js";
import { nativeCallTarget, startChildServer } from "../helpers/servers.js";

const MiB = 1024 * 1024;

// Node's HTTP/2 server, allowing 1 MiB frames and 64 MiB windows; its event loop is blocked for
// 1.5 s once a request starts (it reads nothing meanwhile), then it prints the request's SHA-256.
const serverScript = `
const http2 = require("node:http2");
const { createHash } = require("node:crypto");
const window = 64 * 1024 * 1024;
const server = http2.createSecureServer(
  { cert: process.env.CERT, key: process.env.KEY, settings: { maxFrameSize: 1024 * 1024, initialWindowSize: window } },
);
server.on("session", (session) => session.on("localSettings", () => session.setLocalWindowSize(window)));
server.on("stream", (stream) => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
  const hash = createHash("sha256");
  stream.on("data", (chunk) => hash.update(chunk));
  stream.on("end", () => {
    console.log(hash.digest("hex"));
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end();
  });
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

describe.skipIf(process.env.LCLSTREAM_NATIVE === "0")("the native module sending from JavaScript's memory", () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill();
  });

  it("says a request's bytes are copied only once OpenSSL has read them, so memory reused then never reaches the wire", async () => {
    const native = nativeStreamModule();
    if (!native) throw new Error("the native module is not built: run `npm run build:native` (or set LCLSTREAM_NATIVE=0)");
    const pki = await createTestPki();
    const server = await startChildServer(serverScript, pki);
    child = server.child;
    const { port, lines } = server;

    const chunks = Array.from({ length: 32 }, () => randomBytes(MiB));
    const expected = createHash("sha256");
    for (const chunk of chunks) expected.update(chunk);
    const digest = expected.digest("hex");
    // As a pool would: a chunk is reused (here zeroed) as soon as the module says it is copied.
    let zeroed = 0;
    const reuse = (copied: number) => {
      while (zeroed < chunks.length && (zeroed + 1) * MiB <= copied) chunks[zeroed++]!.fill(0);
    };
    const events: NativeEvent[] = [];
    const ended = new Promise<void>((resolve) => {
      const call = native.open(
        {
          ...nativeCallTarget(port, "/test.Sink/Take"),
          body: new Uint8Array(0),
          caPem: pki.alice.caPem,
          streamWindowBytes: MiB,
          connectionWindowBytes: 2 * MiB,
          maxMessageBytes: MiB,
          borrowed: 0,
          streamed: 1,
        },
        (batch) => {
          for (const e of batch) {
            events.push(e);
            if (e.kind === "copied") {
              reuse(e.copied);
              askAfterEachChunk();
            }
            if (e.kind === "finished") resolve();
          }
        },
      );
      // Asks to hear of every chunk copied, one at a time.
      let next = MiB;
      const askAfterEachChunk = () => {
        for (; next <= chunks.length * MiB && call.awaitCopied(next); next += MiB) reuse(next);
      };
      reuse(call.write(chunks, true));
      askAfterEachChunk();
    });
    const received = (await lines.next()).value;
    await ended;
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    expect(zeroed, "every chunk was let go").toBe(chunks.length);
    expect(received, "the bytes the server received").toBe(digest);
  });
});
