/** The durable stream log on its own: replay, torn writes, and counters kept when freed segments are deleted. */
import { ByteParts } from "../../services/common/byte-parts.js";
import { appendFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { toBinary } from "@bufbuild/protobuf";
import { EventBatchSchema } from "../../gen/lclstream/data/v1/data_pb.js";
import { BufferStream, type StreamConfig } from "../../services/buffer/buffer-stream.js";
import { SegmentLog } from "../../services/buffer/segment-log.js";
import { readBatchHeader } from "../../services/buffer/wire.js";
import { makeBatch } from "../helpers/buffer.js";

const config: StreamConfig = {
  id: "s",
  capacityBytes: 1 << 20,
  retentionBytes: 0,
  producerCount: 2,
  groups: [{ name: "g", mode: "reliable", maxInFlight: 1000, ackTimeoutMs: 0 }],
};

describe("segment log", () => {
  let dir: string;
  const never = new AbortController().signal;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-log-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** Opens the stream's log and rebuilds the stream from it. */
  function reopen(segmentBytes = 4096) {
    const { log, replay } = SegmentLog.open(dir, { segmentBytes });
    const stream = new BufferStream(config, log);
    stream.restore(replay);
    return { log, stream };
  }

  async function publish(stream: BufferStream, rank: number, from: number, to: number) {
    for (let seq = from; seq < to; seq++) {
      // As the direct data path hands batches over: in the pieces they arrived in.
      const encoded = toBinary(EventBatchSchema, makeBatch("streams/s", rank, seq, 4, 1000));
      const bytes = new ByteParts([encoded.subarray(0, 7), encoded.subarray(7, 600), encoded.subarray(600)]);
      await stream.publish(rank, bytes, readBatchHeader(bytes), never);
    }
  }

  it("replays batches, done ranks and acks", async () => {
    const first = reopen();
    await publish(first.stream, 0, 0, 5);
    await publish(first.stream, 1, 0, 3);
    first.stream.done(1, 3n, 12n);
    const consumer = first.stream.subscribe("g", 0, 0);
    first.stream.ack("g", [1, 2]);
    first.stream.unsubscribe(consumer);
    first.log.close();

    const { stream, log } = reopen();
    expect(stream.nextSeq).toBe(9);
    expect(stream.producers.map((p) => [p.nextSeq, p.events, p.done])).toEqual([
      [5n, 20, false],
      [3n, 12, true],
    ]);
    expect(stream.groups[0]!.redeliver).toEqual([3, 4, 5, 6, 7, 8]);
    expect(stream.bufferedBytes).toBe([...stream.entries.values()].filter((e) => e.seq > 2).reduce((n, e) => n + e.bytes.byteLength, 0));
    log.close();
  });

  it("cuts off a torn record at the end and keeps everything before it", async () => {
    const first = reopen(1 << 20);
    await publish(first.stream, 0, 0, 4);
    first.log.close();
    const segment = join(dir, "segments", readdirSync(join(dir, "segments"))[0]!);
    appendFileSync(segment, Buffer.from([200, 0, 0, 0, 1, 2, 3])); // a record the kill interrupted
    appendFileSync(join(dir, "control.log"), Buffer.alloc(10, 7));

    const { stream, log } = reopen(1 << 20);
    expect(stream.nextSeq).toBe(5);
    await publish(stream, 0, 4, 6); // appends after the cut, readable next time
    log.close();
    const again = reopen(1 << 20);
    expect(again.stream.nextSeq).toBe(7);
    again.log.close();
  });

  it("deletes segments whose batches every group acknowledged, keeping sequences and totals", async () => {
    const first = reopen(4096);
    await publish(first.stream, 0, 0, 20);
    first.stream.subscribe("g", 0, 0);
    first.stream.ack(
      "g",
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const left = readdirSync(join(dir, "segments"));
    expect(left.length).toBe(1); // only the segment being written
    first.log.close();

    const { stream, log } = reopen(4096);
    expect(stream.nextSeq).toBe(21);
    expect(stream.producers[0]!.nextSeq).toBe(20n);
    expect(stream.totals()).toMatchObject({ batchCount: 20, eventCount: 80 });
    expect(stream.bufferedBytes).toBe(0);
    // A producer retrying an old batch is told it is a duplicate, not taken again.
    const old = new ByteParts([toBinary(EventBatchSchema, makeBatch("streams/s", 0, 3, 4, 1000))]);
    expect(await stream.publish(0, old, readBatchHeader(old), never)).toBe(false);
    log.close();
  });
});
