/**
 * The native module's message memory: what JavaScript gives back is reused
 * for later messages (fresh memory costs the kernel's page faults and
 * zeroing, more CPU than receiving the bytes), and goes back to the system
 * once it has been unused for ten seconds. The server runs in a process of
 * its own, so that the page faults counted here are the receiver's.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NativeEvent, nativeStreamModule } from "../../services/common/native-stream.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { nativeCallTarget, startChildServer } from "../helpers/servers.js";

const MiB = 1024 * 1024;
const messages = 48;

// Node's HTTP/2 server answering every request with 48 gRPC messages of 4 MiB, the same bytes each time.
const serverScript = `
const http2 = require("node:http2");
const message = Buffer.alloc(5 + 4 * 1024 * 1024, 7);
message[0] = 0;
message.writeUInt32BE(4 * 1024 * 1024, 1);
const server = http2.createSecureServer({ cert: process.env.CERT, key: process.env.KEY });
server.on("stream", (stream) => {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  let sent = 0;
  const more = () => {
    while (sent < ${messages}) {
      sent++;
      if (!stream.write(message)) return stream.once("drain", more);
    }
    stream.end();
  };
  more();
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

describe.skipIf(process.env.LCLSTREAM_NATIVE === "0")("the native module's message memory", () => {
  let pki: TestPki;
  let child: ChildProcess;
  let port: number;

  beforeAll(async () => {
    if (!nativeStreamModule()) throw new Error("the native module is not built: run `npm run build:native` (or set LCLSTREAM_NATIVE=0)");
    pki = await createTestPki();
    ({ child, port } = await startChildServer(serverScript, pki));
  });
  afterAll(() => {
    child?.kill();
  });

  /** Every message of a call held until the last came, then given back; and the page faults the process took meanwhile. */
  const receiveAll = async () => {
    const native = nativeStreamModule()!;
    const held: ArrayBuffer[] = [];
    const errors: NativeEvent[] = [];
    const before = process.resourceUsage().minorPageFault;
    await new Promise<void>((resolve) => {
      const call = native.open(
        {
          ...nativeCallTarget(port, "/test.Source/Give"),
          body: new Uint8Array(5),
          caPem: pki.alice.caPem,
          streamWindowBytes: 8 * MiB,
          connectionWindowBytes: 16 * MiB,
          maxMessageBytes: 8 * MiB,
          borrowed: 0,
          streamed: 0,
        },
        (batch) => {
          for (const e of batch) {
            if (e.kind === "message") {
              held.push(e.buffer!);
              call.taken();
            } else if (e.kind === "error") errors.push(e);
            if (e.kind === "closed" || e.kind === "error") resolve();
          }
        },
      );
    });
    const faults = process.resourceUsage().minorPageFault - before;
    for (const buffer of held) native.release(buffer);
    return { faults, count: held.length, errors };
  };

  it("reuses what JavaScript gave back for later messages, and gives it to the system once unused for ten seconds", { timeout: 60_000 }, async () => {
    // 192 MiB received into fresh memory: a page fault for every 4 KiB page.
    const first = await receiveAll();
    expect(first.errors).toEqual([]);
    expect(first.count).toBe(messages);
    expect(first.faults).toBeGreaterThan((messages * 4 * MiB) / 4096 / 2);
    // The same again, into the memory given back.
    const again = await receiveAll();
    expect(again.count).toBe(messages);
    expect(again.faults).toBeLessThan(first.faults / 4);
    // Unused for ten seconds, the memory went back: received again, it is fresh.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const later = await receiveAll();
    expect(later.count).toBe(messages);
    expect(later.faults).toBeGreaterThan(first.faults / 2);
  });
});
