/** The buffer over real mTLS: groups, work sharing, redelivery, backpressure, replay, latest-only, access. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient, createContextValues, type Client } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { toBinary } from "@bufbuild/protobuf";
import { EventBatchSchema, type EventBatch } from "../../gen/lclstream/data/v1/data_pb.js";
import { BufferService, DeliveryMode, Stream_State, type SubscribeResponse } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { createMeshTransport, publishedBatches } from "../../services/common/client.js";
import { nativeStreamModule } from "../../services/common/native-stream.js";
import { createGrpcJsClient, grpcJsCredentials } from "../helpers/grpc-js.js";
import type { CertMaterial } from "../../services/common/pki.js";
import { build, type BufferServer } from "../../services/buffer/server.js";
import { RevocationSet } from "../../services/common/revocation.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { collect } from "../helpers/grpc-js.js";
import { bareSubscribe, consume, makeBatch, onResponses, publishMessages } from "../helpers/buffer.js";
import { failure } from "../helpers/errors.js";

const KiB = 1024;

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Checks, byte for byte, that `b` is the batch rank 0 published with its seq (makeBatch). */
function expectAsPublished(b: EventBatch, stream: string, payloadBytes: number) {
  const sent = makeBatch(stream, 0, Number(b.seq), 4, payloadBytes);
  expect(Buffer.from(toBinary(EventBatchSchema, b)).equals(toBinary(EventBatchSchema, sent)), `batch ${b.seq} arrived as published`).toBe(true);
}

describe("buffer", () => {
  let pki: TestPki;
  let stateDir: string;
  let buffer: BufferServer;
  const clientOf = (tls: CertMaterial): Client<typeof BufferService> => createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls }));
  const alice = () => clientOf(pki.alice);

  async function newStream(stream: Parameters<Client<typeof BufferService>["createStream"]>[0]["stream"]) {
    const res = await alice().createStream({ stream });
    return { name: res.stream!.name, token: res.publishToken };
  }

  beforeAll(async () => {
    pki = await createTestPki();
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-buffer-"));
    buffer = await build(
      { stateDir, submitters: ["user/alice"], admins: ["user/admin"], heartbeatMs: 300, metricsPort: 0 },
      { tls: pki.server, revocations: new RevocationSet() },
    );
  });
  afterAll(async () => {
    await buffer?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("gives every group every batch once, shares each group's batches among its consumers, and ends with matching totals", async () => {
    const { name, token } = await newStream({
      producerCount: 2,
      consumerGroups: [
        { name: "analysis", maxInFlight: 2 },
        { name: "archive", maxInFlight: 2 },
      ],
    });
    const consumers = ["analysis", "analysis", "archive", "archive"].map((g) =>
      consume(alice(), name, g, { onBatch: () => new Promise((r) => setTimeout(r, 2)) }),
    );
    const [p0, p1] = await Promise.all([0, 1].map((rank) => alice().publish(publishMessages(name, token, rank, 0, 20, { done: true }))));
    expect(p0).toMatchObject({ acceptedBatches: 20n, duplicateBatches: 0n, nextSeq: 20n });
    expect(p1!.acceptedBatches).toBe(20n);
    const got = await Promise.all(consumers);
    for (const group of [got.slice(0, 2), got.slice(2)]) {
      expect(group.flatMap((c) => c.seqs).sort((a, b) => a - b)).toEqual(range(1, 40));
      for (const c of group) expect(c.seqs.length).toBeGreaterThan(0);
    }
    for (const c of got) {
      expect(c.end).toMatchObject({ batchCount: 40n, eventCount: 160n });
      expect(c.end!.producerTotals.map((p) => [p.producerRank, p.batchCount, p.eventCount])).toEqual([
        [0, 20n, 80n],
        [1, 20n, 80n],
      ]);
    }
    // The batches arrive as the producers made them.
    const batch = got[0]!.batches[0]!;
    expect(batch).toEqual(makeBatch(name, batch.producerRank, Number(batch.seq)));
    const { stream } = await alice().getStream({ name });
    expect(stream!.state).toBe(Stream_State.DRAINED);
    expect(stream!.metrics!.groups.map((g) => [g.group, g.ackedBatches, g.lagBatches, g.endOfStreamDelivered])).toEqual([
      ["analysis", 40n, 0n, true],
      ["archive", 40n, 0n, true],
    ]);
    // Prometheus: cumulative values as counters, the stream's own counts.
    const scraped = await (await fetch(buffer.server.metricsUrl!)).text();
    const id = name.replace("streams/", "");
    expect(scraped).toContain("# TYPE lclstream_buffer_published_batches_total counter");
    expect(scraped).toContain("# TYPE lclstream_buffer_delivered_bytes_total counter");
    expect(scraped).toContain("# TYPE lclstream_buffer_lag_batches gauge");
    expect(scraped).toContain(`lclstream_buffer_published_batches_total{stream="${id}",server="buffer"} 40`);
    expect(scraped).toContain(`lclstream_buffer_published_bytes_total{stream="${id}",server="buffer"} ${stream!.metrics!.publishedBytes}`);
    expect(scraped).toContain(`lclstream_buffer_lag_batches{stream="${id}",group="archive",server="buffer"} 0`);
    for (const rank of [0, 1]) expect(scraped).toContain(`lclstream_buffer_producer_events_total{stream="${id}",rank="${rank}",server="buffer"} 80`);
    // Each rank's bytes add up to the stream's.
    const rankBytes = [
      ...scraped.matchAll(new RegExp(`^lclstream_buffer_producer_bytes_total\\{stream="${id}",rank="\\d",server="buffer"\\} (\\d+)$`, "gm")),
    ].map((m) => Number(m[1]));
    expect(rankBytes).toHaveLength(2);
    expect(rankBytes[0]! + rankBytes[1]!).toBe(Number(stream!.metrics!.publishedBytes));
  });

  it("redelivers a departed consumer's unacknowledged batches to another, losing nothing", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "g", maxInFlight: 4 }] });
    await alice().publish(publishMessages(name, token, 0, 0, 12, { done: true }));
    const leaving = new AbortController();
    const first = await consume(alice(), name, "g", { ack: false, stopAfter: 4, signal: leaving.signal });
    leaving.abort();
    expect(first.seqs).toEqual([1, 2, 3, 4]);
    const second = await consume(alice(), name, "g");
    expect(second.seqs.sort((a, b) => a - b)).toEqual(range(1, 12));
    expect(second.redeliveries.sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    expect(second.end!.batchCount).toBe(12n);
    const { stream } = await alice().getStream({ name });
    expect(stream!.metrics!.groups[0]!.redeliveredBatches).toBe(4n);
  });

  it("lets go of a consumer that vanished while the buffer waited for room to send to it, and redelivers what it held", async () => {
    // 8 batches of 32 KiB overfill a reader's 64 KiB HTTP/2 window: the buffer waits on flow control.
    const { name, token } = await newStream({ consumerGroups: [{ name: "g", maxInFlight: 8 }] });
    await alice().publish(publishMessages(name, token, 0, 0, 8, { done: true, payloadBytes: 32 * KiB }));
    const { session, call } = await bareSubscribe(buffer.url, pki.alice, name, "g");
    call.pause(); // reads nothing more: the window fills
    const group = async () => (await alice().getStream({ name })).stream!.metrics!.groups[0]!;
    for (let i = 0; i < 100 && (await group()).deliveredBatches < 8n; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100)); // the buffer is now waiting to write
    session.destroy();
    for (let i = 0; i < 100 && (await group()).consumers > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await group()).consumers, "the vanished consumer is gone from its group").toBe(0);
    const next = await consume(alice(), name, "g");
    expect(next.seqs.sort((a, b) => a - b)).toEqual(range(1, 8));
    expect(next.end!.batchCount).toBe(8n);
  });

  it("holds each consumer to its window in batches and in bytes, and tells it the window at the start", async () => {
    const batchBytes = toBinary(EventBatchSchema, makeBatch("streams/x", 0, 0, 4, 10 * KiB)).byteLength;
    const { name, token } = await newStream({
      consumerGroups: [{ name: "default" }, { name: "counted", maxInFlight: 3 }, { name: "sized", maxInFlightBytes: BigInt(Math.floor(2.5 * batchBytes)) }],
    });
    await alice().publish(publishMessages(name, token, 0, 0, 10, { payloadBytes: 10 * KiB }));
    /** What one consumer that never acknowledges is told and gets before the buffer stops sending. */
    const unacknowledged = async (group: string, asked: { maxInFlight?: number; maxInFlightBytes?: bigint } = {}) => {
      const stop = new AbortController();
      let window: { maxInFlight: number; maxInFlightBytes: bigint } | undefined;
      let batches = 0;
      const reading = (async () => {
        for await (const r of alice().subscribe({ stream: name, consumerGroup: group, ...asked }, { signal: stop.signal })) {
          if (r.kind.case === "started") window = { maxInFlight: r.kind.value.maxInFlight, maxInFlightBytes: r.kind.value.maxInFlightBytes };
          if (r.kind.case === "batch") batches++;
        }
      })().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      stop.abort();
      await reading;
      return { window, batches };
    };
    expect(await unacknowledged("default"), "default: 32 MiB, at most 1024 batches").toEqual({
      window: { maxInFlight: 1024, maxInFlightBytes: 32n * 1024n * 1024n },
      batches: 10,
    });
    expect(await unacknowledged("counted"), "a count alone is the only limit").toEqual({ window: { maxInFlight: 3, maxInFlightBytes: 0n }, batches: 3 });
    expect(await unacknowledged("sized"), "bytes: takes a batch while under the limit").toEqual({
      window: { maxInFlight: 1024, maxInFlightBytes: BigInt(Math.floor(2.5 * batchBytes)) },
      batches: 3,
    });
    expect(await unacknowledged("counted", { maxInFlightBytes: 1n }), "a batch over the limit still goes alone").toEqual({
      window: { maxInFlight: 3, maxInFlightBytes: 1n },
      batches: 1,
    });
    expect(await unacknowledged("sized", { maxInFlight: 2 }), "the consumer's own count, the group's bytes").toEqual({
      window: { maxInFlight: 2, maxInFlightBytes: BigInt(Math.floor(2.5 * batchBytes)) },
      batches: 2,
    });
  });

  it("redelivers what a consumer holds past the group's ack timeout", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "g", maxInFlight: 2, ackTimeoutMs: 200 }] });
    await alice().publish(publishMessages(name, token, 0, 0, 3, { done: true }));
    const stuck = new AbortController();
    const silent = consume(alice(), name, "g", { ack: false, signal: stuck.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const diligent = await consume(alice(), name, "g");
    stuck.abort();
    await silent;
    expect(diligent.seqs.sort((a, b) => a - b)).toEqual([1, 2, 3]);
    expect(diligent.redeliveries.length).toBeGreaterThan(0);
  });

  it("blocks a publisher while a stalled consumer keeps the stream full, and lets it go on when acks arrive", async () => {
    const { name, token } = await newStream({ capacityBytes: BigInt(256 * KiB), consumerGroups: [{ name: "g", maxInFlight: 100 }] });
    const held: SubscribeResponse[] = [];
    const stalled = new AbortController();
    const subscription = (async () => {
      for await (const r of alice().subscribe({ stream: name, consumerGroup: "g" }, { signal: stalled.signal })) if (r.kind.case === "batch") held.push(r);
    })().catch(() => undefined);
    let finished = false;
    const publishing = alice()
      .publish(publishMessages(name, token, 0, 0, 12, { done: true, payloadBytes: 60 * KiB }))
      .then((r) => ((finished = true), r));
    await expect.poll(() => held.length).toBe(4);
    await new Promise((r) => setTimeout(r, 300));
    const { stream } = await alice().getStream({ name });
    expect(stream!.metrics!.publishedBatches).toBe(4n);
    expect(stream!.metrics!.bufferedBytes).toBeLessThanOrEqual(256n * 1024n);
    expect(finished).toBe(false);

    // Acknowledge as they come: the publisher finishes.
    const acker = setInterval(() => {
      const seqs = held.splice(0).map((r) => r.seq);
      if (seqs.length) void alice().ack({ stream: name, consumerGroup: "g", seqs });
    }, 20);
    try {
      expect((await publishing).acceptedBatches).toBe(12n);
    } finally {
      clearInterval(acker);
      stalled.abort();
      await subscription;
    }
  });

  it("drops a producer's retried batches, refuses gaps, and checks what done claims", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "g" }] });
    expect((await alice().publish(publishMessages(name, token, 0, 0, 5))).acceptedBatches).toBe(5n);
    const retry = await alice().publish(publishMessages(name, token, 0, 3, 8));
    expect(retry).toMatchObject({ acceptedBatches: 3n, duplicateBatches: 2n, nextSeq: 8n });
    expect(await failure(alice().publish(publishMessages(name, token, 0, 10, 11)))).toMatchObject({ code: Code.FailedPrecondition, reason: "SEQ_GAP" });
    expect(await failure(alice().publish(publishMessages(name, token, 0, 8, 8, { done: true, totalBatches: 9 })))).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "DONE_MISMATCH",
    });
    const { stream } = await alice().getStream({ name });
    expect(stream!.metrics!.producers[0]).toMatchObject({ nextSeq: 8n, events: 32n, done: false });
  });

  it("sends heartbeats on a quiet subscription, then the batches when they come", async () => {
    const { name, token } = await newStream({});
    const kinds: string[] = [];
    const subscription = alice().subscribe({ stream: name, consumerGroup: "default" })[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) kinds.push((await subscription.next()).value.kind.case);
    expect(kinds).toEqual(["started", "heartbeat", "heartbeat"]);
    await alice().publish(publishMessages(name, token, 0, 0, 1, { done: true }));
    expect((await subscription.next()).value).toMatchObject({ seq: 1n, kind: { case: "batch" } });
    await subscription.return?.();
  });

  it("replays retained batches from start_seq", async () => {
    const { name, token } = await newStream({ retentionBytes: BigInt(64 * KiB), consumerGroups: [{ name: "g" }] });
    await alice().publish(publishMessages(name, token, 0, 0, 10, { done: true, payloadBytes: 1024 }));
    expect((await consume(alice(), name, "g")).seqs).toEqual(range(1, 10));
    const replay = await consume(alice(), name, "g", { startSeq: 6 });
    expect(replay.seqs).toEqual(range(6, 10));
    expect(replay.end!.batchCount).toBe(10n);
    expect(await failure(consume(alice(), name, "g", { startSeq: 50 }))).toMatchObject({ code: Code.OutOfRange, reason: "START_SEQ_AHEAD" });
  });

  it("refuses a replay from a batch no longer retained", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "g" }] });
    await alice().publish(publishMessages(name, token, 0, 0, 4, { done: true }));
    await consume(alice(), name, "g");
    expect(await failure(consume(alice(), name, "g", { startSeq: 1 }))).toMatchObject({ code: Code.OutOfRange, reason: "START_SEQ_NOT_RETAINED" });
  });

  it("lets a latest-only viewer skip ahead without ever holding back the reliable group", async () => {
    // Batches large enough that the viewer's HTTP/2 window (8 MiB) fills and the buffer must skip.
    const { name, token } = await newStream({
      capacityBytes: BigInt(4096 * KiB),
      consumerGroups: [
        { name: "analysis", maxInFlight: 8 },
        { name: "viewer", mode: DeliveryMode.LATEST_ONLY },
      ],
    });
    const viewer = consume(alice(), name, "viewer", { ack: false, onBatch: () => new Promise((r) => setTimeout(r, 100)) });
    const analysis = consume(alice(), name, "analysis");
    await alice().publish(publishMessages(name, token, 0, 0, 40, { done: true, payloadBytes: 512 * KiB }));
    const [a, v] = await Promise.all([analysis, viewer]);
    expect(a.seqs).toEqual(range(1, 40));
    expect(v.seqs.length).toBeLessThan(40);
    expect(v.seqs.at(-1)).toBe(40);
    expect(v.end!.batchCount).toBe(40n);
  });

  it("sends a latest-only reader that was slow the newest batch next, not what queued while it read nothing", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "viewer", mode: DeliveryMode.LATEST_ONLY }] });
    const { session, call } = await bareSubscribe(buffer.url, pki.alice, name, "viewer");
    try {
      call.pause(); // a 64 KiB window: two of these batches
      await alice().publish(publishMessages(name, token, 0, 0, 200, { payloadBytes: 32 * KiB }));
      await new Promise((r) => setTimeout(r, 300));
      const seqs: bigint[] = [];
      const newest = new Promise<void>((resolve) =>
        onResponses(call, (r) => {
          if (r.kind.case === "batch") seqs.push(r.seq);
          if (r.seq === 200n) resolve();
        }),
      );
      call.resume();
      await newest;
      // What the window held, the one being written, and the newest; never the hundred batches in between.
      expect(seqs.length, `received ${seqs.join(" ")}`).toBeLessThanOrEqual(5);
    } finally {
      session.close();
    }
  });

  it("serves the reference gRPC client (grpc-js), which decodes batches sent as raw bytes", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "g" }] });
    await alice().publish(publishMessages(name, token, 0, 0, 3, { done: true }));
    const client = createGrpcJsClient(BufferService, new URL(buffer.url).host, grpcJsCredentials(pki.alice));
    try {
      const call = client.subscribe!({ stream: name, consumerGroup: "g", maxInFlight: 10 }) as grpc.ClientReadableStream<SubscribeResponse>;
      call.on("data", (r: SubscribeResponse) => r.kind.case === "batch" && void alice().ack({ stream: name, consumerGroup: "g", seqs: [r.seq] }));
      const got = await collect<SubscribeResponse>(call);
      // A heartbeat (caught_up) may come between the last batch and the end, while the acks are on their way.
      expect(got.map((r) => r.kind.case).filter((k) => k !== "heartbeat")).toEqual(["started", "batch", "batch", "batch", "endOfStream"]);
      const batch = got[1]!.kind.value as EventBatch;
      expect(Buffer.from(toBinary(EventBatchSchema, batch))).toEqual(Buffer.from(toBinary(EventBatchSchema, makeBatch(name, 0, 0))));
    } finally {
      client.close();
    }
  });

  it("gives a natively received batch's memory back once every group's consumer was sent it, and every consumer gets every byte", async () => {
    const released = async () => {
      const text = await (await fetch(buffer.metricsUrl!)).text();
      return Number(/^lclstream_native_received_bytes_released_total\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await released();
    const { name, token } = await newStream({ consumerGroups: [{ name: "native" }, { name: "node" }, { name: "viewer", mode: DeliveryMode.LATEST_ONLY }] });
    const batches = 40;
    const payloadBytes = 64 * KiB;
    // One group reads on the module's data path, one on Node's HTTP/2 (grpc-js), the viewer skips ahead and leaves.
    const native = consume(alice(), name, "native");
    const client = createGrpcJsClient(BufferService, new URL(buffer.url).host, grpcJsCredentials(pki.alice));
    const viewer = consume(alice(), name, "viewer", { ack: false, stopAfter: 2 });
    try {
      const call = client.subscribe!({ stream: name, consumerGroup: "node", maxInFlight: 4 }) as grpc.ClientReadableStream<SubscribeResponse>;
      call.on("data", (r: SubscribeResponse) => r.kind.case === "batch" && void alice().ack({ stream: name, consumerGroup: "node", seqs: [r.seq] }));
      const overNode = collect<SubscribeResponse>(call);
      // As a producer publishes: on the module's data path when it is built.
      const contextValues = createContextValues().set(publishedBatches, true);
      await alice().publish(publishMessages(name, token, 0, 0, batches, { done: true, payloadBytes }), { contextValues });
      const [got, node] = await Promise.all([native, overNode, viewer]);
      const nodeBatches = node.flatMap((r) => (r.kind.case === "batch" ? [r.kind.value] : []));
      for (const received of [got.batches, nodeBatches]) {
        expect(received.map((b) => Number(b.seq))).toEqual(range(0, batches - 1));
        for (const b of received) expectAsPublished(b, name, payloadBytes);
      }
    } finally {
      client.close();
    }
    // Published natively, every batch but the newest (kept for latest-only readers) was given back before the collector saw it.
    if (nativeStreamModule()) expect(await released()).toBeGreaterThanOrEqual(before + (batches - 1) * payloadBytes);
  });

  it("keeps a batch's memory while a stalled reader's HTTP/2 stream still holds it unsent, though every group is done with it", async () => {
    const { name, token } = await newStream({ consumerGroups: [{ name: "fast" }, { name: "viewer", mode: DeliveryMode.LATEST_ONLY }] });
    const payloadBytes = 256 * KiB; // larger than the viewer's 64 KiB windows: its batch waits in Node's stream
    const { session, call } = await bareSubscribe(buffer.url, pki.alice, name, "viewer");
    try {
      call.pause();
      const fast = consume(alice(), name, "fast", { stopAfter: 30 });
      const contextValues = createContextValues().set(publishedBatches, true);
      await alice().publish(publishMessages(name, token, 0, 0, 30, { payloadBytes }), { contextValues });
      expect((await fast).seqs).toHaveLength(30);
      // The first 30 are acknowledged and freed: the next 30 arrive in the memory they gave back.
      await alice().publish(publishMessages(name, token, 0, 30, 60, { done: true, payloadBytes }), { contextValues });
      const seen: SubscribeResponse[] = [];
      const ended = new Promise<void>((resolve) => call.once("end", resolve));
      onResponses(call, (r) => seen.push(r));
      call.resume();
      await ended;
      const viewed = seen.flatMap((r) => (r.kind.case === "batch" ? [r.kind.value] : []));
      expect(viewed.length).toBeGreaterThan(0);
      for (const b of viewed) expectAsPublished(b, name, payloadBytes);
    } finally {
      session.close();
      // Its fast group left with batches unread: the stream would keep its capacity promised.
      await alice().deleteStream({ name });
    }
  });

  it("refuses what a caller may not do, with the right code", async () => {
    const { name, token } = await newStream({ readers: ["user/bob"], consumerGroups: [{ name: "g" }] });
    const bob = clientOf(pki.bob);
    const stranger = clientOf(pki.proxy);
    expect(await failure(alice().publish(publishMessages(name, "lclsp1.wrong", 0, 0, 1)))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "PUBLISH_TOKEN_REFUSED",
    });
    expect(await failure(alice().publish(publishMessages("streams/nope", token, 0, 0, 1)))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "PUBLISH_TOKEN_REFUSED",
    });
    expect(await failure(alice().publish(publishMessages(name, token, 5, 0, 1)))).toMatchObject({ code: Code.InvalidArgument, reason: "RANK_OUT_OF_RANGE" });
    expect(await failure(consume(alice(), "streams/nope", "g"))).toMatchObject({ code: Code.NotFound, reason: "STREAM_NOT_FOUND" });
    expect(await failure(consume(stranger, name, "g"))).toMatchObject({ code: Code.NotFound, reason: "STREAM_NOT_FOUND" });
    expect(await failure(consume(alice(), name, "nobody"))).toMatchObject({ code: Code.InvalidArgument, reason: "UNKNOWN_GROUP" });
    expect(await failure(alice().ack({ stream: name, consumerGroup: "g", seqs: [99n] }))).toMatchObject({ code: Code.InvalidArgument, reason: "UNKNOWN_SEQ" });
    expect(await failure(bob.createStream({ stream: {} }))).toMatchObject({ code: Code.PermissionDenied, reason: "CREATE_NOT_ALLOWED" });
    expect(await failure(bob.deleteStream({ name }))).toMatchObject({ code: Code.PermissionDenied, reason: "OWNER_REQUIRED" });
    expect((await bob.getStream({ name })).stream!.owner).toBe(pki.uri("user", "alice"));
    expect((await bob.listStreams({})).streams.map((s) => s.name)).toEqual([name]);
    expect((await stranger.listStreams({})).streams).toEqual([]);
    expect(
      await failure(
        alice().createStream({ stream: { capacityBytes: 10n, consumerGroups: [{ name: "A B" }, { name: "x" }, { name: "x" }] }, streamId: "bad/id" }),
      ),
    ).toMatchObject({
      code: Code.InvalidArgument,
      fields: ["stream_id", "stream.capacity_bytes", "stream.consumer_groups[0].name", "stream.consumer_groups[2].name"],
    });
    // Found by the fuzzer: a shard whose last rank is past uint32 was created, and then its metrics could not be sent.
    expect(await failure(alice().createStream({ stream: { producerCount: 3, shardCount: 2 ** 31 + 1, shardIndex: 7 } }))).toMatchObject({
      code: Code.InvalidArgument,
      fields: ["stream.shard_count"],
    });
    // A byte window past uint64's exact range as a number would be echoed wrong in the started message.
    expect(await failure(alice().createStream({ stream: { consumerGroups: [{ name: "g", maxInFlightBytes: 2n ** 64n - 1n }] } }))).toMatchObject({
      code: Code.InvalidArgument,
      fields: ["stream.consumer_groups[0].max_in_flight_bytes"],
    });
    expect(
      await failure(
        (async () => {
          for await (const _ of alice().subscribe({ stream: name, consumerGroup: "g", maxInFlightBytes: 2n ** 41n })) break;
        })(),
      ),
    ).toMatchObject({ code: Code.InvalidArgument, fields: ["max_in_flight_bytes"] });
    expect(await failure(alice().createStream({ stream: { capacityBytes: 64n * 1024n * 1024n * 1024n } }))).toMatchObject({
      code: Code.ResourceExhausted,
      reason: "BUFFER_FULL",
    });
  });

  it("keeps a client's connection through a thousand refused Acks", async () => {
    // Each refusal ends the call from the server's side. A client that reset the stream as well
    // tripped the server's guard on rapid resets (a burst of 1000) at call 1001, and lost its connection.
    const client = alice();
    const { name } = await newStream({ consumerGroups: [{ name: "g" }] });
    const codes = new Set<Code>();
    for (let i = 0; i < 1100; i++) codes.add((await failure(client.ack({ stream: name, consumerGroup: "g", consumerId: "gone", seqs: [1n] }))).code);
    expect([...codes]).toEqual([Code.NotFound]);
  }, 30_000);

  it("is idempotent by request_id, and deleting a stream ends its subscriptions", async () => {
    const first = await alice().createStream({ stream: { consumerGroups: [{ name: "g" }] }, requestId: "r-1" });
    const again = await alice().createStream({ stream: { consumerGroups: [{ name: "g" }] }, requestId: "r-1" });
    expect(again.stream!.name).toBe(first.stream!.name);
    expect(again.publishToken).toBe(first.publishToken);
    // (Caught from the start: the subscription may end before DeleteStream's own answer arrives.)
    const waiting = failure(consume(alice(), first.stream!.name, "g"));
    await new Promise((r) => setTimeout(r, 100));
    await alice().deleteStream({ name: first.stream!.name });
    expect(await waiting).toMatchObject({ code: Code.Canceled, reason: "STREAM_DELETED" });
    expect(await failure(alice().getStream({ name: first.stream!.name }))).toMatchObject({ code: Code.NotFound });
  });
});
