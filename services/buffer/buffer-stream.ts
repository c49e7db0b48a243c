/**
 * One buffer stream in memory: accepted batches (the encoded bytes as the
 * producer sent them), producer ranks with their sequences, consumer groups
 * with their consumers, deliveries, acknowledgements, redeliveries and the
 * end of stream. Bounded: a publisher waits while the unacknowledged batches
 * fill the capacity. No transport here: the service maps RPCs onto it, and
 * its refusals are gRPC statuses the service passes on.
 */
import { type ByteParts, Lease } from "../common/byte-parts.js";
import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { AsyncQueue } from "../common/async-queue.js";
import { abortable } from "../common/abortable.js";
import { rpcError } from "../common/errors.js";

export const bufferDomain = "lclstream.buffer";

/** How a group receives batches. */
export type GroupMode = "reliable" | "latest";

export interface GroupConfig {
  name: string;
  mode: GroupMode;
  /** Unacknowledged batches a consumer may hold; 0: the default window. */
  maxInFlight: number;
  /** Unacknowledged bytes a consumer may hold; 0 or absent: none with `maxInFlight`, else the default window. */
  maxInFlightBytes?: number;
  /** 0: redeliver only when the consumer goes away. */
  ackTimeoutMs: number;
}

export interface StreamConfig {
  id: string;
  capacityBytes: number;
  retentionBytes: number;
  producerCount: number;
  /** For one shard of a sharded stream: ranks r with r % count == index publish here (default: not sharded). */
  shard?: { index: number; count: number };
  groups: GroupConfig[];
}

export type StreamState = "open" | "complete" | "drained" | "lost";

/** A batch the stream holds. */
export interface Entry {
  seq: number;
  /** The encoded EventBatch, as it arrived (never copied into one buffer). */
  bytes: ByteParts;
  rank: number;
  producerSeq: bigint;
  events: number;
  /** Reliable groups that acknowledged it. */
  ackedBy: number;
  /** The stream's hold on memory given back once no one reads it (a batch received on the native data path). */
  lease?: Lease;
}

/** The totals sent with the end of stream. */
export interface Totals {
  batchCount: number;
  eventCount: number;
  payloadBytes: number;
  producers: { rank: number; batchCount: number; eventCount: number; skippedEventCount: number }[];
}

/** What a consumer receives; a batch's `bytes` are the entry's, lent to the consumer's wire until it sent them. */
export type Delivery = { kind: "batch"; entry: Entry; bytes: ByteParts; redelivery: boolean } | { kind: "end"; totals: Totals } | { kind: "caughtUp" };

/** A batch's delivery: its bytes lent, when their memory is leased, until the wire has sent them. */
function batchDelivery(entry: Entry, redelivery: boolean): Delivery {
  return { kind: "batch", entry, bytes: entry.lease ? entry.lease.lend(entry.bytes) : entry.bytes, redelivery };
}

/** Gives back what deliveries that will never be sent borrowed. */
function dropped(deliveries: Delivery[]): void {
  for (const d of deliveries) if (d.kind === "batch") d.bytes.onSent?.();
}

/** The counters a stream's batches carry, kept when the batches themselves are gone. */
export interface Checkpoint {
  nextSeq: number;
  publishedBytes: number;
  producers: { nextSeq: bigint; events: number; batches: number }[];
}

/** What a durable stream's log held, in order, for rebuilding it. */
export interface LogReplay {
  batches: Omit<Entry, "ackedBy">[];
  done: { rank: number; batchCount: number; eventCount: number; skippedEventCount: number }[];
  acks: { groupIndex: number; seq: number }[];
  checkpoint: Checkpoint | undefined;
}

/** Persistence hooks of a durable stream: called before a change takes effect. */
export interface StreamLog {
  appendBatch(entry: Entry): void;
  appendDone(rank: number, batchCount: number, eventCount: number, skippedEventCount: number): void;
  appendAck(groupIndex: number, seq: number): void;
  /** The entry is freed everywhere: its space on disk may be reclaimed, keeping `checkpoint()`. */
  freed(seq: number, checkpoint: () => Checkpoint): void;
}

interface ProducerState {
  nextSeq: bigint;
  events: number;
  batches: number;
  /** Bytes of the rank's batches accepted since this buffer started (not kept across restarts, unlike the counts). */
  bytes: number;
  done: boolean;
  connected: number;
  /** Events the rank read and left out as incomplete, as it said when done. */
  skipped: number;
}

/** What a consumer may hold unacknowledged: batches, and bytes of them as encoded. */
export interface ConsumerWindow {
  batches: number;
  bytes: number;
}

/**
 * The window of a group that sets none: as many batches as 32 MiB holds, up
 * to 1024. A window counted in batches alone starves small batches: at 64 KiB,
 * 32 of them are 2 MiB in flight and an Ack every 16, and the relay carried
 * 270-285 MB/s where 128 of them, acknowledged 64 at a time, carried 350-400.
 */
export const defaultWindow: ConsumerWindow = { batches: 1024, bytes: 32 * 1024 * 1024 };

/**
 * A consumer's window: the limits it asked for, else its group's. A batch
 * count set without a byte limit is the only limit (as before byte limits
 * existed); with neither, the default window.
 */
export function consumerWindow(group: GroupConfig, asked: { maxInFlight: number; maxInFlightBytes: number }): ConsumerWindow {
  const batches = asked.maxInFlight || group.maxInFlight;
  const bytes = asked.maxInFlightBytes || group.maxInFlightBytes || 0;
  if (!batches && !bytes) return defaultWindow;
  return { batches: batches || defaultWindow.batches, bytes: bytes || Number.POSITIVE_INFINITY };
}

export class Consumer {
  readonly id = randomBytes(8).toString("hex");
  readonly outbox = new AsyncQueue<Delivery>();
  /** Seqs delivered and not yet acknowledged: when each was handed over, and its size. */
  readonly #held = new Map<number, { at: number; bytes: number }>();
  #heldBytes = 0;
  /** Told that its group has every batch delivered (until a redelivery comes its way). */
  toldCaughtUp = false;
  constructor(
    readonly group: Group,
    readonly window: ConsumerWindow,
  ) {}

  /** Room for one more batch: under both limits, or holding nothing (a batch larger than the window still goes). */
  get hasRoom(): boolean {
    return this.#held.size === 0 || (this.#held.size < this.window.batches && this.#heldBytes < this.window.bytes);
  }

  /** Seqs held, oldest first. */
  get heldSeqs(): number[] {
    return [...this.#held.keys()];
  }

  holds(seq: number): boolean {
    return this.#held.has(seq);
  }

  hold(seq: number, bytes: number): void {
    this.#held.set(seq, { at: Date.now(), bytes });
    this.#heldBytes += bytes;
  }

  release(seq: number): void {
    const held = this.#held.get(seq);
    if (!held) return;
    this.#held.delete(seq);
    this.#heldBytes -= held.bytes;
  }

  releaseAll(): void {
    this.#held.clear();
    this.#heldBytes = 0;
  }

  /** Seqs held longer than `ms`. */
  heldLongerThan(ms: number, now = Date.now()): number[] {
    return [...this.#held].filter(([, h]) => now - h.at > ms).map(([seq]) => seq);
  }
}

/** Counters of a group, for GetStream and Prometheus. */
export interface GroupCounters {
  deliveredBatches: number;
  deliveredBytes: number;
  ackedBatches: number;
  redeliveredBatches: number;
}

/** Consumer ids a group remembers for Ack, newest first out of the window (a few MB at most). */
const rememberedConsumers = 100_000;

export class Group {
  readonly consumers = new Map<string, Consumer>();
  /** The next seq never delivered to this group. */
  nextToDeliver = 1;
  /** Seqs to deliver again, in order, before new ones. */
  redeliver: number[] = [];
  /** Seq -> the consumer holding it. */
  readonly inFlight = new Map<number, Consumer>();
  /**
   * Ids of the consumers that joined since this process started, present or
   * gone (a late Ack from a consumer that left still counts), the newest
   * `rememberedConsumers` of them.
   */
  readonly knownConsumerIds = new Set<string>();
  /** Every seq at or below it is acknowledged; `ackedAbove` holds the ones beyond. */
  ackFloor = 0;
  readonly ackedAbove = new Set<number>();
  endDelivered = false;
  readonly counters: GroupCounters = { deliveredBatches: 0, deliveredBytes: 0, ackedBatches: 0, redeliveredBatches: 0 };
  #turn = 0;

  constructor(
    readonly config: GroupConfig,
    readonly index: number,
  ) {}

  isAcked(seq: number): boolean {
    return seq <= this.ackFloor || this.ackedAbove.has(seq);
  }

  markAcked(seq: number): void {
    this.ackedAbove.add(seq);
    while (this.ackedAbove.delete(this.ackFloor + 1)) this.ackFloor++;
  }

  unmarkAcked(seq: number): void {
    // Lower the floor below `seq`, keeping what was acknowledged above it.
    while (this.ackFloor >= seq) this.ackedAbove.add(this.ackFloor--);
    this.ackedAbove.delete(seq);
  }

  /** The next consumer with room, round robin. */
  nextConsumer(): Consumer | undefined {
    const all = [...this.consumers.values()];
    for (let i = 0; i < all.length; i++) {
      const c = all[(this.#turn + i) % all.length]!;
      if (c.hasRoom) {
        this.#turn = (this.#turn + i + 1) % all.length;
        return c;
      }
    }
    return undefined;
  }
}

export class BufferStream {
  readonly config: StreamConfig;
  readonly groups: Group[];
  readonly entries = new Map<number, Entry>();
  readonly producers: ProducerState[];
  /** When the first batch was accepted (ms since the epoch), if this buffer saw it: the request service's time to first batch. */
  firstBatchAt: number | undefined;
  state: StreamState = "open";
  stateReason = "";
  /** Bytes of batches some reliable group has not acknowledged: bounded by the capacity. */
  bufferedBytes = 0;
  /** Bytes of acknowledged batches kept for replay: bounded by the retention. */
  retainedBytes = 0;
  readonly #retained: number[] = [];
  /** The newest batch, for latest-only groups (it may already be freed from `entries`). */
  #newest: Entry | undefined;
  #failure: { error: unknown } | undefined;
  nextSeq = 1;
  publishedBytes = 0;
  publishedEvents = 0;
  #spaceWaiters = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  readonly #log: StreamLog | undefined;
  /** Called after every state change (for persistence and metrics). */
  onStateChange: ((stream: BufferStream) => void) | undefined;

  constructor(config: StreamConfig, log?: StreamLog) {
    this.config = config;
    this.#log = log;
    this.groups = config.groups.map((g, i) => new Group(g, i));
    this.producers = Array.from({ length: config.producerCount }, () => ({
      nextSeq: 0n,
      events: 0,
      batches: 0,
      bytes: 0,
      done: false,
      connected: 0,
      skipped: 0,
    }));
    const timeouts = config.groups.map((g) => g.ackTimeoutMs).filter((ms) => ms > 0);
    if (timeouts.length) {
      this.#timer = setInterval(() => this.#expireAcks(), Math.max(10, Math.min(...timeouts) / 4));
      this.#timer.unref();
    }
  }

  get reliableGroups(): Group[] {
    return this.groups.filter((g) => g.config.mode === "reliable");
  }

  group(name: string): Group | undefined {
    return this.groups.find((g) => g.config.name === name);
  }

  /** Whether all ranks are done. */
  get complete(): boolean {
    return this.producers.every((p) => p.done);
  }

  totals(): Totals {
    return {
      batchCount: this.nextSeq - 1,
      eventCount: this.publishedEvents,
      payloadBytes: this.publishedBytes,
      producers: this.producers.map((p, slot) => ({ rank: this.rankOf(slot), batchCount: p.batches, eventCount: p.events, skippedEventCount: p.skipped })),
    };
  }

  /**
   * Accepts a batch from `rank`, waiting while the stream is full; resolves
   * `false` for a duplicate (a retry of an accepted batch).
   */
  async publish(rank: number, bytes: ByteParts, header: { producerRank: number; seq: bigint; eventCount: number }, signal: AbortSignal): Promise<boolean> {
    const producer = this.producer(rank);
    if (header.producerRank !== rank) {
      throw rpcError(
        Code.InvalidArgument,
        bufferDomain,
        "RANK_MISMATCH",
        `the batch says producer_rank ${header.producerRank} on a Publish opened as rank ${rank}`,
      );
    }
    if (bytes.byteLength > this.config.capacityBytes) {
      throw rpcError(
        Code.ResourceExhausted,
        bufferDomain,
        "BATCH_TOO_LARGE",
        `a ${bytes.byteLength}-byte batch cannot fit the stream's capacity of ${this.config.capacityBytes} bytes; make batches smaller or the capacity larger`,
      );
    }
    while (!this.#failure && !this.#fits(bytes.byteLength)) {
      let wake!: () => void;
      const space = new Promise<void>((resolve) => (wake = resolve));
      this.#spaceWaiters.add(wake);
      try {
        await abortable(space, signal);
      } finally {
        this.#spaceWaiters.delete(wake);
      }
    }
    if (this.#failure) throw this.#failure.error;
    this.#assertOpen();
    if (header.seq < producer.nextSeq) return false;
    if (header.seq > producer.nextSeq) {
      throw rpcError(
        Code.FailedPrecondition,
        bufferDomain,
        "SEQ_GAP",
        `rank ${rank} sent seq ${header.seq} but the buffer expects ${producer.nextSeq}; resume from there`,
        {
          metadata: { next_seq: String(producer.nextSeq) },
        },
      );
    }
    if (producer.done) throw rpcError(Code.FailedPrecondition, bufferDomain, "PRODUCER_DONE", `rank ${rank} already said it was done`);
    const entry: Entry = { seq: this.nextSeq, bytes, rank, producerSeq: header.seq, events: header.eventCount, ackedBy: 0, lease: Lease.of(bytes) };
    this.#log?.appendBatch(entry);
    this.#accept(entry);
    if (entry.seq === 1) this.firstBatchAt = Date.now();
    this.dispatch();
    return true;
  }

  /** Takes a batch into memory; `counted` when the counters already include it (restored from a checkpoint). */
  #accept(entry: Entry, counted = false) {
    this.entries.set(entry.seq, entry);
    if (!counted) {
      const producer = this.producers[this.#slot(entry.rank)]!;
      this.nextSeq = entry.seq + 1;
      producer.nextSeq = entry.producerSeq + 1n;
      producer.batches++;
      producer.events += entry.events;
      producer.bytes += entry.bytes.byteLength;
      this.publishedBytes += entry.bytes.byteLength;
      this.publishedEvents += entry.events;
    }
    // A newest batch freed already was kept only as the newest (see #freeRetained).
    const previous = this.#newest;
    this.#newest = entry;
    if (previous && !this.entries.has(previous.seq)) previous.lease?.endFirst();
    if (this.reliableGroups.length) {
      this.bufferedBytes += entry.bytes.byteLength;
    } else {
      // Nobody acknowledges: the batch is kept only as retention allows.
      this.#retained.push(entry.seq);
      this.retainedBytes += entry.bytes.byteLength;
      this.#freeRetained();
    }
  }

  /** The counters, for the log to keep when it deletes the files of freed batches. */
  checkpoint = (): Checkpoint => ({
    nextSeq: this.nextSeq,
    publishedBytes: this.publishedBytes,
    producers: this.producers.map((p) => ({ nextSeq: p.nextSeq, events: p.events, batches: p.batches })),
  });

  /**
   * Rebuilds the stream from its durable log after a restart: counters,
   * batches, done ranks and acknowledgements; whatever no group acknowledged
   * is delivered again.
   */
  restore(replay: LogReplay): void {
    const c = replay.checkpoint;
    if (c) {
      this.nextSeq = c.nextSeq;
      this.publishedBytes = c.publishedBytes;
      c.producers.forEach((p, rank) => Object.assign(this.producers[rank]!, p));
      this.publishedEvents = this.producers.reduce((sum, p) => sum + p.events, 0);
    }
    for (const batch of replay.batches) this.#accept({ ...batch, ackedBy: 0 }, batch.seq < (c?.nextSeq ?? 0));
    for (const { rank, skippedEventCount } of replay.done) Object.assign(this.producers[this.#slot(rank)]!, { done: true, skipped: skippedEventCount });
    if (this.complete) this.state = "complete";
    for (const { groupIndex, seq } of replay.acks) {
      const group = this.groups[groupIndex];
      if (!group || group.isAcked(seq)) continue;
      group.markAcked(seq);
      group.counters.ackedBatches++;
      this.#ackedByGroup(seq);
    }
    for (const group of this.reliableGroups) {
      for (let seq = group.ackFloor + 1; seq < this.nextSeq; seq++) if (!group.isAcked(seq)) group.redeliver.push(seq);
      group.nextToDeliver = this.nextSeq;
    }
    this.#freeRetained();
  }

  /** Marks `rank` done after checking it sent what it says. */
  done(rank: number, batchCount: bigint, eventCount: bigint, skippedEventCount = 0n): void {
    const producer = this.producer(rank);
    this.#assertOpen();
    if (producer.done) return;
    if (batchCount !== producer.nextSeq) {
      throw rpcError(
        Code.FailedPrecondition,
        bufferDomain,
        "DONE_MISMATCH",
        `rank ${rank} says it produced ${batchCount} batches but the buffer has ${producer.nextSeq}; send the missing ones first`,
        {
          metadata: { next_seq: String(producer.nextSeq) },
        },
      );
    }
    if (eventCount !== BigInt(producer.events)) {
      throw rpcError(
        Code.FailedPrecondition,
        bufferDomain,
        "DONE_MISMATCH",
        `rank ${rank} says it produced ${eventCount} events but its batches held ${producer.events}`,
      );
    }
    this.#log?.appendDone(rank, Number(batchCount), Number(eventCount), Number(skippedEventCount));
    producer.done = true;
    producer.skipped = Number(skippedEventCount);
    if (this.complete) this.#setState("complete");
    this.dispatch();
  }

  /** Joins a consumer to a group; `startSeq` replays from a retained position. */
  subscribe(groupName: string, maxInFlight: number, startSeq: number, maxInFlightBytes = 0): Consumer {
    const group = this.group(groupName)!;
    if (startSeq > 0 && group.config.mode === "reliable") this.#replayFrom(group, startSeq);
    const consumer = new Consumer(group, consumerWindow(group.config, { maxInFlight, maxInFlightBytes }));
    group.consumers.set(consumer.id, consumer);
    group.knownConsumerIds.add(consumer.id);
    if (group.knownConsumerIds.size > rememberedConsumers) group.knownConsumerIds.delete(group.knownConsumerIds.values().next().value!);
    this.dispatch();
    return consumer;
  }

  /** A consumer left: what it held goes back to its group. */
  unsubscribe(consumer: Consumer): void {
    const group = consumer.group;
    if (!group.consumers.delete(consumer.id)) return;
    dropped(consumer.outbox.takeAll());
    this.#takeBack(consumer, consumer.heldSeqs);
    this.dispatch();
  }

  /** Acknowledges seqs for a group; returns how many were new. */
  ack(groupName: string, seqs: number[]): number {
    const group = this.group(groupName)!;
    let acked = 0;
    for (const seq of seqs) {
      if (group.isAcked(seq)) continue;
      const holder = group.inFlight.get(seq);
      const waiting = holder ? -1 : group.redeliver.indexOf(seq);
      if (!holder && waiting < 0) {
        throw rpcError(
          Code.InvalidArgument,
          bufferDomain,
          "UNKNOWN_SEQ",
          `seq ${seq} was not delivered to group ${group.config.name}; acknowledge only seqs you received`,
          {
            metadata: { seq: String(seq) },
            violations: [{ field: "seqs", description: `seq ${seq} was not delivered to group ${group.config.name}` }],
          },
        );
      }
      this.#log?.appendAck(group.index, seq);
      // A late acknowledgement of a batch taken back for redelivery still counts.
      if (waiting >= 0) group.redeliver.splice(waiting, 1);
      group.inFlight.delete(seq);
      holder?.release(seq);
      group.markAcked(seq);
      group.counters.ackedBatches++;
      acked++;
      this.#ackedByGroup(seq);
    }
    this.#freeRetained();
    if (acked) this.dispatch();
    return acked;
  }

  /** Ends every consumer with `error` (the stream is deleted or lost). */
  fail(error: unknown): void {
    this.#failure = { error };
    for (const group of this.groups) for (const c of group.consumers.values()) c.outbox.fail(error);
    clearInterval(this.#timer);
    for (const wake of this.#spaceWaiters) wake();
  }

  markLost(reason: string): void {
    this.stateReason = reason;
    this.#setState("lost");
  }

  /** Hands out what can be handed out: batches to consumers with room, then the end of stream. */
  dispatch(): void {
    for (const group of this.groups) {
      if (group.config.mode === "latest") this.#dispatchLatest(group);
      else this.#dispatchReliable(group);
    }
    if (this.state === "complete" && this.reliableGroups.every((g) => g.endDelivered)) this.#setState("drained");
  }

  #dispatchReliable(group: Group) {
    for (;;) {
      const seq = group.redeliver.length ? group.redeliver[0]! : group.nextToDeliver < this.nextSeq ? group.nextToDeliver : undefined;
      if (seq === undefined) break;
      const consumer = group.nextConsumer();
      if (!consumer) return;
      const redelivery = group.redeliver.length > 0;
      if (redelivery) group.redeliver.shift();
      else group.nextToDeliver++;
      if (group.isAcked(seq)) continue;
      const entry = this.entries.get(seq)!;
      group.inFlight.set(seq, consumer);
      consumer.hold(seq, entry.bytes.byteLength);
      group.counters.deliveredBatches++;
      group.counters.deliveredBytes += entry.bytes.byteLength;
      if (redelivery) group.counters.redeliveredBatches++;
      consumer.toldCaughtUp &&= !redelivery;
      consumer.outbox.push(batchDelivery(entry, redelivery));
    }
    if (!this.complete || group.redeliver.length > 0 || group.consumers.size === 0) return;
    if (group.inFlight.size === 0) {
      this.#deliverEnd(group);
      return;
    }
    // Everything is out, not all of it acknowledged: consumers holding batches back learn that no more come.
    for (const consumer of group.consumers.values()) {
      if (consumer.toldCaughtUp) continue;
      consumer.toldCaughtUp = true;
      consumer.outbox.push({ kind: "caughtUp" });
    }
  }

  /**
   * Latest only: each consumer holds at most one batch not yet written to it;
   * a newer batch replaces it, so a slow viewer skips ahead instead of
   * slowing anyone. No acknowledgements.
   */
  #dispatchLatest(group: Group) {
    const newest = this.#newest;
    for (const consumer of group.consumers.values()) {
      if (!newest || consumer.holds(newest.seq)) continue;
      dropped(consumer.outbox.takeAll());
      consumer.releaseAll();
      consumer.hold(newest.seq, newest.bytes.byteLength);
      group.counters.deliveredBatches++;
      group.counters.deliveredBytes += newest.bytes.byteLength;
      consumer.outbox.push(batchDelivery(newest, false));
    }
    if (this.complete && group.consumers.size > 0) this.#deliverEnd(group);
  }

  #deliverEnd(group: Group) {
    const totals = this.totals();
    for (const consumer of group.consumers.values()) {
      consumer.outbox.push({ kind: "end", totals });
      consumer.outbox.close();
    }
    group.consumers.clear();
    if (!group.endDelivered) {
      group.endDelivered = true;
      this.onStateChange?.(this);
    }
  }

  #takeBack(consumer: Consumer, seqs: number[]) {
    const group = consumer.group;
    for (const seq of seqs) {
      consumer.release(seq);
      if (group.inFlight.get(seq) === consumer) group.inFlight.delete(seq);
      if (group.config.mode === "reliable" && !group.isAcked(seq)) group.redeliver.push(seq);
    }
    group.redeliver.sort((a, b) => a - b);
  }

  #expireAcks() {
    const now = Date.now();
    let expired = false;
    for (const group of this.reliableGroups) {
      if (!group.config.ackTimeoutMs) continue;
      for (const consumer of group.consumers.values()) {
        const late = consumer.heldLongerThan(group.config.ackTimeoutMs, now);
        if (late.length) {
          this.#takeBack(consumer, late);
          expired = true;
        }
      }
    }
    if (expired) this.dispatch();
  }

  #replayFrom(group: Group, startSeq: number) {
    if (startSeq >= this.nextSeq && !(this.complete && startSeq === this.nextSeq)) {
      throw rpcError(Code.OutOfRange, bufferDomain, "START_SEQ_AHEAD", `start_seq ${startSeq} is beyond the stream's last seq ${this.nextSeq - 1}`);
    }
    for (let seq = startSeq; seq < this.nextSeq; seq++) {
      if (!group.isAcked(seq)) continue;
      if (!this.entries.has(seq)) {
        const oldest = Math.min(...this.entries.keys());
        throw rpcError(
          Code.OutOfRange,
          bufferDomain,
          "START_SEQ_NOT_RETAINED",
          `seq ${seq} is no longer retained${Number.isFinite(oldest) ? `; the oldest held is ${oldest}` : ""}; raise retention_bytes to replay further back`,
        );
      }
    }
    for (let seq = startSeq; seq < this.nextSeq; seq++) {
      if (!group.isAcked(seq)) continue;
      const entry = this.entries.get(seq)!;
      group.unmarkAcked(seq);
      group.counters.ackedBatches--;
      if (entry.ackedBy-- === this.reliableGroups.length) {
        // Back from retention into the buffered bytes.
        const at = this.#retained.indexOf(seq);
        if (at >= 0) this.#retained.splice(at, 1);
        this.retainedBytes -= entry.bytes.byteLength;
        this.bufferedBytes += entry.bytes.byteLength;
      }
      group.redeliver.push(seq);
    }
    group.redeliver.sort((a, b) => a - b);
    group.endDelivered = false;
  }

  #ackedByGroup(seq: number) {
    const entry = this.entries.get(seq);
    if (!entry) return;
    if (++entry.ackedBy < this.reliableGroups.length) return;
    this.bufferedBytes -= entry.bytes.byteLength;
    this.#retained.push(seq);
    this.retainedBytes += entry.bytes.byteLength;
    this.#wakePublishers();
  }

  #freeRetained() {
    while (this.retainedBytes > this.config.retentionBytes && this.#retained.length) {
      const seq = this.#retained.shift()!;
      const entry = this.entries.get(seq)!;
      this.entries.delete(seq);
      this.retainedBytes -= entry.bytes.byteLength;
      this.#log?.freed(seq, this.checkpoint);
      // The newest batch stays for latest-only groups that join later: its memory is left to the collector.
      if (entry !== this.#newest) entry.lease?.endFirst();
    }
  }

  #fits(size: number): boolean {
    // Without reliable groups nothing is ever acknowledged: only retention bounds the stream.
    if (this.reliableGroups.length === 0) return true;
    return this.bufferedBytes + size <= this.config.capacityBytes;
  }

  #wakePublishers() {
    for (const wake of this.#spaceWaiters) wake();
  }

  /** The producer rank of a slot of `producers` (its rank itself, unless the stream is a shard). */
  rankOf(slot: number): number {
    const shard = this.config.shard;
    return shard ? slot * shard.count + shard.index : slot;
  }

  /** Where a rank sits in `producers`: -1 for a rank that does not publish here. */
  #slot(rank: number): number {
    const shard = this.config.shard;
    if (!shard) return rank < this.producers.length ? rank : -1;
    const slot = Math.floor(rank / shard.count);
    return rank % shard.count === shard.index && slot < this.producers.length ? slot : -1;
  }

  /** A rank's state; INVALID_ARGUMENT for a rank that does not publish to this stream. */
  producer(rank: number): ProducerState {
    const producer = this.producers[this.#slot(rank)];
    if (!producer) {
      const shard = this.config.shard;
      const which = shard
        ? `one of ${Array.from(this.producers, (_, slot) => this.rankOf(slot)).join(", ")} (shard ${shard.index} of ${shard.count} takes ranks r with r % ${shard.count} == ${shard.index})`
        : `below the stream's producer_count ${this.producers.length}`;
      throw rpcError(Code.InvalidArgument, bufferDomain, "RANK_OUT_OF_RANGE", `producer_rank ${rank} does not publish to this stream: it must be ${which}`, {
        violations: [{ field: "open.producer_rank", description: `must be ${which}` }],
      });
    }
    return producer;
  }

  #assertOpen() {
    if (this.state === "lost") throw rpcError(Code.FailedPrecondition, bufferDomain, "STREAM_LOST", `stream ${this.config.id} was lost: ${this.stateReason}`);
  }

  #setState(state: StreamState) {
    if (this.state === state || this.state === "lost") return;
    this.state = state;
    this.onStateChange?.(this);
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
