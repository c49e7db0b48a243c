/**
 * A consumer of a data request, as `lclstream get` and the demo run it:
 * waits for the request's stream, subscribes as one consumer of a group (to
 * every shard of a sharded request), writes what arrives (optionally),
 * acknowledges it, and checks the totals of the end of stream against what
 * it received.
 *
 * With an output directory it keeps a journal there (`received.jsonl`, one
 * line per batch written, before the batch is acknowledged), so a consumer
 * killed mid-stream and started again on the same directory counts what it
 * already has, skips redeliveries of it by (shard, seq), and checks the
 * totals over both runs.
 */
import { setMaxListeners } from "node:events";
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError, createClient, createContextValues, type Client, type Transport } from "@connectrpc/connect";
import { toBinary } from "@bufbuild/protobuf";
import { BufferService, DeliveryMode, ShardAssignment } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { EventBatchSchema, type EventBatch, type StreamTotals } from "../../gen/lclstream/data/v1/data_pb.js";
import { type DataRequestService, DataRequest_State as State, type DataRequest, type StreamShard } from "../../gen/lclstream/request/v1/request_pb.js";
import { Acker } from "../common/acker.js";
import { borrowedResponses } from "../common/client.js";
import { backoffMs, sleep } from "../common/backoff.js";
import { defaultConsumerGroup } from "../common/data-path.js";
import { dtypeFromProto, typedView } from "../producer/ndarray.js";
import { mergeTotals, shardCallHeaders, shardsOf, sumTotals } from "../common/shards.js";

export type OutputFormat = "native" | "hdf5" | "npy";

export interface FetchProgress {
  events: number;
  batches: number;
  bytes: number;
  hits: number;
  /** Seconds since this run started. */
  seconds: number;
  /** Payload bytes per second received by this run. */
  bytesPerSecond: number;
  /** Batches an earlier run on the same output directory had received. */
  resumedBatches: number;
  lag: number;
}

/** One line of the journal: a batch received and written. */
interface Received {
  /** The shard it came from, for a sharded request (absent: shard 0). */
  shard?: number;
  seq: string;
  events: number;
  bytes: number;
  hits: number;
}

export interface FetchOptions {
  requests: Client<typeof DataRequestService>;
  /** A transport to the buffer at a URL (the request says which). */
  transportFor(url: string): Transport;
  name: string;
  group?: string;
  out?: string;
  format?: OutputFormat;
  onProgress?(p: FetchProgress): void;
  signal: AbortSignal;
}

/** Waits until the request has a stream (or ended without one). */
async function streamOf(o: FetchOptions): Promise<DataRequest> {
  for (;;) {
    const { dataRequest: r } = await o.requests.getDataRequest({ name: o.name }, { signal: o.signal });
    if (r!.stream) return r!;
    if (r!.state === State.FAILED || r!.state === State.CANCELED) throw new Error(`${o.name} ${State[r!.state].toLowerCase()}: ${r!.stateReason}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A .npy file (format 1.0) of one array. */
function npy(dtype: string, shape: bigint[], data: Uint8Array): Uint8Array {
  const descr = (
    {
      bool: "|b1",
      int8: "|i1",
      uint8: "|u1",
      int16: "<i2",
      uint16: "<u2",
      int32: "<i4",
      uint32: "<u4",
      int64: "<i8",
      uint64: "<u8",
      float32: "<f4",
      float64: "<f8",
    } as Record<string, string>
  )[dtype]!;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.map(String).join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header = `${header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 11, " ")}\n`;
  const head = Buffer.concat([Buffer.from([0x93]), Buffer.from("NUMPY"), Buffer.from([1, 0]), Buffer.alloc(2), Buffer.from(header, "latin1")]);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, data]);
}

/** The bytes of detector data a batch carries. */
function payloadBytes(batch: EventBatch): number {
  if (batch.payload.case === "serialized") return batch.payload.value.data.byteLength;
  return Object.values(batch.payload.value?.fields ?? {}).reduce((n, a) => n + a.data.byteLength, 0);
}

/** The hits a batch flags (fields named `*_hit`, one byte an event). */
function hitsOf(batch: EventBatch): number {
  if (batch.payload.case !== "columns") return 0;
  let hits = 0;
  for (const [name, a] of Object.entries(batch.payload.value.fields)) {
    if (name.endsWith("_hit")) hits += (typedView(dtypeFromProto[a.dtype], a.data) as Uint8Array).reduce((n, v) => n + v, 0);
  }
  return hits;
}

async function write(batch: EventBatch, out: string, format: OutputFormat) {
  const base = join(out, `batch-r${batch.producerRank}-${String(batch.seq).padStart(6, "0")}`);
  if (format === "hdf5" && batch.payload.case === "serialized") return writeFile(`${base}.h5`, batch.payload.value.data);
  if (format === "npy" && batch.payload.case === "columns") {
    await mkdir(base, { recursive: true });
    for (const [name, a] of Object.entries(batch.payload.value.fields))
      await writeFile(join(base, `${name}.npy`), npy(dtypeFromProto[a.dtype], a.shape, a.data));
    return;
  }
  return writeFile(`${base}.pb`, toBinary(EventBatchSchema, batch));
}

/**
 * The journal of an output directory: what an earlier run received. The
 * directory belongs to one request and group; another is refused rather than
 * mixed in.
 */
async function openJournal(out: string, request: string, group: string): Promise<{ received: Received[]; append(r: Received): Promise<void> }> {
  await mkdir(out, { recursive: true });
  const owner = join(out, "request.json");
  const journal = join(out, "received.jsonl");
  if (existsSync(owner)) {
    const was = JSON.parse(await readFile(owner, "utf8")) as { request: string; group: string };
    if (was.request !== request || was.group !== group)
      throw new Error(`${out} holds ${was.request} (group ${was.group}); write ${request} into another directory`);
  } else await writeFile(owner, `${JSON.stringify({ request, group })}\n`);
  const text = existsSync(journal) ? await readFile(journal, "utf8") : "";
  // A line cut by a kill is not a batch received: it was never acknowledged and comes again.
  const received = text.split("\n").flatMap((line) => {
    try {
      return line ? [JSON.parse(line) as Received] : [];
    } catch {
      return [];
    }
  });
  if (text && !text.endsWith("\n")) await writeFile(journal, received.map((r) => `${JSON.stringify(r)}\n`).join(""));
  return { received, append: (r) => appendFile(journal, `${JSON.stringify(r)}\n`) };
}

/** A shard in an error message: "the stream" when the request has only one. */
const shardName = (shard: StreamShard, sharded: boolean) => (sharded ? `shard ${shard.index} (${shard.stream})` : "the stream");

/**
 * One shard's end of stream, checked against what arrived from it; `shared`
 * (assigned mode: another consumer may have read part of the shard before a
 * rebalance) checks only that no more arrived.
 */
function checkShard(shard: StreamShard, totals: StreamTotals, got: { batches: number; events: number }, sharded: boolean, shared: boolean) {
  const wrong = shared ? BigInt(got.batches) > totals.batchCount : totals.eventCount !== BigInt(got.events) || totals.batchCount !== BigInt(got.batches);
  if (wrong) {
    throw new Error(
      `${shardName(shard, sharded)} ended with ${totals.batchCount} batches and ${totals.eventCount} events, but ${got.batches} batches and ${got.events} events arrived`,
    );
  }
  const ranks = totals.producerTotals.map((p) => p.producerRank).sort((a, b) => a - b);
  if (sharded && ranks.join() !== [...shard.producerRanks].sort((a, b) => a - b).join()) {
    throw new Error(
      `${shardName(shard, sharded)} ended with the totals of ranks ${ranks.join(", ")}, but ranks ${shard.producerRanks.join(", ")} publish to it`,
    );
  }
}

/**
 * Consumes the request's stream to its end, every shard at once (one
 * subscription each, merged as they arrive); resolves with the totals it
 * checked: each shard's against what came from it, and all of them against
 * the request's ranks.
 */
export async function fetchRequest(o: FetchOptions): Promise<{ request: DataRequest; totals: StreamTotals; progress: FetchProgress }> {
  const request = await streamOf(o);
  const shards = shardsOf(request);
  const sharded = shards.length > 1;
  const group = o.group ?? defaultGroup(request.consumerGroups);
  // Assigned mode: this consumer reads the shards the request service gives it, not all of them.
  const groupConfig = request.consumerGroups.find((g) => g.name === group);
  const assigned = sharded && groupConfig?.shardAssignment === ShardAssignment.ASSIGNED;
  const journal = o.out ? await openJournal(o.out, request.name, group) : undefined;
  const started = performance.now();
  const progress: FetchProgress = { events: 0, batches: 0, bytes: 0, hits: 0, seconds: 0, bytesPerSecond: 0, resumedBatches: 0, lag: 0 };
  const seen = new Set<string>();
  const perShard = shards.map(() => ({ batches: 0, events: 0 }));
  const count = (r: Received) => {
    seen.add(`${r.shard ?? 0}:${r.seq}`);
    progress.events += r.events;
    progress.batches++;
    progress.bytes += r.bytes;
    progress.hits += r.hits;
    perShard[r.shard ?? 0]!.batches++;
    perShard[r.shard ?? 0]!.events += r.events;
  };
  for (const r of journal?.received ?? []) if (!seen.has(`${r.shard ?? 0}:${r.seq}`)) count(r);
  progress.resumedBatches = progress.batches;
  const resumedBytes = progress.bytes;
  const tick = () => {
    progress.seconds = (performance.now() - started) / 1000;
    progress.bytesPerSecond = (progress.bytes - resumedBytes) / progress.seconds;
  };
  // One connection per buffer endpoint, whatever the number of shards on it.
  const byEndpoint = new Map<string, Client<typeof BufferService>>();
  const buffers = shards.map((s) => {
    let client = byEndpoint.get(s.bufferEndpoint);
    if (!client) byEndpoint.set(s.bufferEndpoint, (client = createClient(BufferService, o.transportFor(s.bufferEndpoint))));
    return client;
  });
  const lags = shards.map(() => 0);
  const lagTimer = setInterval(() => {
    shards.forEach((s, i) =>
      buffers[i]!.getStream({ name: s.stream }, shardCallHeaders(s)).then(
        (x) => {
          lags[i] = Number(x.stream?.metrics?.groups.find((g) => g.group === group)?.lagBatches ?? 0);
          progress.lag = lags.reduce((a, b) => a + b, 0);
        },
        () => undefined,
      ),
    );
  }, 1000);
  // One shard failing ends the others.
  const abort = new AbortController();
  const signal = AbortSignal.any([o.signal, abort.signal]);
  // Every shard's subscription, acknowledgements and reader listen on it.
  setMaxListeners(10 + 4 * shards.length, signal);
  // What is written and journaled, in arrival order across shards.
  let writing = Promise.resolve();

  /** How one shard is read: until `signal` (a rebalance takes the shard away), its acknowledgements in `acks`. */
  interface ShardReading {
    signal: AbortSignal;
    acks?: Acker;
  }

  /** One subscription to a shard, to its end of stream. */
  async function subscribeOnce(shard: StreamShard, buffer: Client<typeof BufferService>, reading: ShardReading): Promise<StreamTotals | undefined> {
    let consumerId = "";
    const signal = reading.signal;
    // Acknowledgements go in groups beside the stream; the end of stream waits for them.
    const route = shardCallHeaders(shard);
    const acker = new Acker((seqs) => buffer.ack({ stream: shard.stream, consumerGroup: group, consumerId, seqs }, { signal, ...route }), {
      intervalMs: 20,
    });
    reading.acks = acker;
    try {
      // Each batch is written out and counted before the next is taken, so they can share memory.
      const contextValues = createContextValues().set(borrowedResponses, true);
      for await (const r of buffer.subscribe({ stream: shard.stream, consumerGroup: group }, { signal, ...route, contextValues })) {
        if (r.kind.case === "started") {
          consumerId = r.kind.value.consumerId;
          acker.useWindow(r.kind.value);
        } else if (r.kind.case === "batch") {
          const batch = r.kind.value;
          // A redelivered batch already written is only acknowledged again.
          if (!seen.has(`${shard.index}:${r.seq}`)) {
            const got: Received = { seq: String(r.seq), events: batch.eventIndices.length, bytes: payloadBytes(batch), hits: hitsOf(batch) };
            if (sharded) got.shard = shard.index;
            if (o.out) {
              // In arrival order across shards, one batch at a time.
              const written = writing.then(async () => {
                await write(batch, o.out!, o.format ?? "native");
                await journal?.append(got);
              });
              writing = written.catch(() => undefined);
              await written;
            }
            count(got);
            tick();
            o.onProgress?.(progress);
          }
          acker.add(r.seq, payloadBytes(batch));
        } else if (r.kind.case === "endOfStream") {
          await acker.flush();
          checkShard(shard, r.kind.value, perShard[shard.index]!, sharded, assigned);
          return r.kind.value;
        }
      }
      return undefined;
    } finally {
      acker.close();
    }
  }

  /**
   * A shard to its end of stream, subscribing again while its buffer is
   * unreachable or restarting (for a minute at most): what was received is
   * skipped when it comes again, by (shard, seq).
   */
  async function readShard(shard: StreamShard, buffer: Client<typeof BufferService>, reading: ShardReading = { signal }): Promise<StreamTotals> {
    const giveUpAt = Date.now() + 60_000;
    for (let attempt = 0; ; attempt++) {
      try {
        const totals = await subscribeOnce(shard, buffer, reading);
        if (totals) return totals;
        throw new Error(`${shardName(shard, sharded)} of ${o.name} ended without its end-of-stream message`);
      } catch (error) {
        const code = error instanceof ConnectError ? error.code : undefined;
        if (reading.signal.aborted || (code !== Code.Unavailable && code !== Code.Canceled) || Date.now() > giveUpAt) throw error;
        await sleep(backoffMs(attempt), reading.signal);
      }
    }
  }

  /**
   * Assigned mode: the shards this consumer is given, read until a rebalance
   * takes them away (what was done is acknowledged first; the rest goes to
   * their next reader), until the service says every shard is complete. The
   * totals are those of the shards whose end this consumer received.
   */
  async function readAssigned(): Promise<StreamTotals[]> {
    const readers = new Map<number, { reading: ShardReading; stop: AbortController; done: Promise<StreamTotals | undefined> }>();
    const take = (index: number) => {
      const stop = new AbortController();
      const reading: ShardReading = { signal: AbortSignal.any([signal, stop.signal]) };
      const done = readShard(shards[index]!, buffers[index]!, reading).catch((error: unknown) => {
        if (stop.signal.aborted && !signal.aborted) return undefined; // let go at a rebalance
        abort.abort(error);
        throw error;
      });
      done.catch(() => undefined); // awaited at the end, or let go; never left unhandled when the watch ends first
      readers.set(index, { reading, stop, done });
    };
    const letGo = async (index: number) => {
      const r = readers.get(index)!;
      readers.delete(index);
      await r.reading.acks?.flush().catch(() => undefined);
      r.stop.abort();
      await r.done.catch(() => undefined);
    };
    for await (const a of o.requests.watchShardAssignment({ name: o.name, consumerGroup: group }, { signal })) {
      for (const index of [...readers.keys()]) if (!a.shards.includes(index)) await letGo(index);
      for (const index of a.shards) if (!readers.has(index)) take(index);
      if (a.complete) break;
    }
    signal.throwIfAborted();
    return (await Promise.all([...readers.values()].map((r) => r.done))).filter((t): t is StreamTotals => t !== undefined);
  }

  try {
    const ended = assigned
      ? await readAssigned()
      : await Promise.all(
          shards.map((s, i) =>
            readShard(s, buffers[i]!).catch((error: unknown) => {
              abort.abort(error);
              throw error;
            }),
          ),
        );
    tick();
    const totals = assigned ? sumTotals(ended) : sharded ? mergeTotals(ended, request.parallelism || 1) : ended[0]!;
    return { request, totals, progress };
  } catch (caught) {
    // A shard's reader that failed ends the rest with its error: that one is the cause.
    const error = abort.signal.aborted && abort.signal.reason instanceof Error && !o.signal.aborted ? abort.signal.reason : caught;
    // A stream that goes away usually means the request ended (or is about to, once the service sees it): say why.
    const gone = error instanceof ConnectError && (error.code === Code.FailedPrecondition || error.code === Code.NotFound);
    for (let i = 0; i < (gone ? 20 : 1); i++) {
      const { dataRequest: now } = await o.requests.getDataRequest({ name: o.name }).catch(() => ({ dataRequest: undefined }));
      if (now && (now.state === State.FAILED || now.state === State.CANCELED))
        throw new Error(`${o.name} ${State[now.state].toLowerCase()}: ${now.stateReason}`);
      if (!now || now.state === State.SUCCEEDED || o.signal.aborted) break;
      await sleep(250, o.signal);
    }
    throw error;
  } finally {
    abort.abort();
    clearInterval(lagTimer);
  }
}

/**
 * The group a consumer joins when it names none: `default` if the request has
 * it, else its first reliable group (never a latest-only viewer's group). The
 * Python client chooses the same way.
 */
export function defaultGroup(groups: { name: string; mode: DeliveryMode }[]): string {
  if (!groups.length || groups.some((g) => g.name === defaultConsumerGroup)) return defaultConsumerGroup;
  return (groups.find((g) => g.mode !== DeliveryMode.LATEST_ONLY) ?? groups[0]!).name;
}
