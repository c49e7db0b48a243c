/**
 * A durable stream across a SIGKILL of the buffer process (the real
 * `lclstream buffer serve`): producers and consumers resume and every batch
 * arrives once; a stream that was not durable is reported lost.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BufferService, Stream_State } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { createMeshTransportFromCertDir } from "../../services/common/client.js";
import { errorInfo } from "../../services/common/errors.js";
import { issueBufferPki, startLclstream, type RunningCommand } from "../helpers/cli.js";
import { consume, publishMessages } from "../helpers/buffer.js";
import { freePort } from "../helpers/ports.js";

describe("durable stream across a buffer crash", () => {
  let dir: string;
  let buffer: RunningCommand | undefined;
  let url: string;
  const start = async () => {
    buffer = await startLclstream(
      ["buffer", "serve", "--state-dir", join(dir, "state"), "--cert-dir", join(dir, "buffer"), "--submitter", "user/alice", "--port", url.split(":").at(-1)!],
      [/^buffer: /],
    );
  };
  const client = async () => createClient(BufferService, await createMeshTransportFromCertDir(url, join(dir, "alice")));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-durable-"));
    await issueBufferPki(dir, "durable.lclstream");
    url = `https://127.0.0.1:${await freePort()}`;
    await start();
  });
  afterAll(async () => {
    await buffer?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("loses nothing of a durable stream when the buffer is killed, and says loudly that a plain stream was lost", async () => {
    const alice = await client();
    const durable = await alice.createStream({
      stream: { durable: true, producerCount: 2, capacityBytes: 4n << 20n, consumerGroups: [{ name: "g", maxInFlight: 4 }] },
    });
    const plain = await alice.createStream({ stream: { consumerGroups: [{ name: "g" }] } });
    const name = durable.stream!.name;
    const token = durable.publishToken;
    const opts = { payloadBytes: 16 * 1024 };
    await Promise.all([alice.publish(publishMessages(name, token, 0, 0, 30, opts)), alice.publish(publishMessages(name, token, 1, 0, 20, opts))]);
    const before = await consume(alice, name, "g", { stopAfter: 10 });

    expect((await buffer!.stop("SIGKILL")).code).toBe(null);
    await start();

    const again = await client();
    const { stream } = await again.getStream({ name });
    expect(stream!.state).toBe(Stream_State.OPEN);
    expect(stream!.metrics!.producers.map((p) => p.nextSeq)).toEqual([30n, 20n]);

    // Producers resume (rank 1 from a little too early: the repeats are dropped).
    const [r0, r1] = await Promise.all([
      again.publish(publishMessages(name, token, 0, 30, 40, { ...opts, done: true })),
      again.publish(publishMessages(name, token, 1, 15, 25, { ...opts, done: true })),
    ]);
    expect(r0!.acceptedBatches).toBe(10n);
    expect(r1).toMatchObject({ acceptedBatches: 5n, duplicateBatches: 5n });
    const after = await consume(again, name, "g");
    const all = [...before.seqs, ...after.seqs].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 65 }, (_, i) => i + 1));
    expect(after.end).toMatchObject({ batchCount: 65n, eventCount: 260n });
    expect(after.end!.producerTotals.map((p) => p.batchCount)).toEqual([40n, 25n]);

    const lost = (await again.getStream({ name: plain.stream!.name })).stream!;
    expect(lost.state).toBe(Stream_State.LOST);
    expect(lost.stateReason).toContain("not durable");
    const refused = await consume(again, plain.stream!.name, "g").then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(refused?.code).toBe(Code.FailedPrecondition);
    expect(errorInfo(refused!)?.reason).toBe("STREAM_LOST");
  });
});
