/**
 * The buffer's streams: the live ones in memory, their records in SQLite,
 * durable ones' logs on disk, publish tokens, and the memory budget all
 * streams share. On start, durable streams are rebuilt from their logs and
 * the others are marked lost.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import type { Stream } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { DeliveryMode } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { rpcError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { BufferStream, bufferDomain, type StreamConfig } from "./buffer-stream.js";
import { SegmentLog } from "./segment-log.js";
import { StreamStore, type StreamRecord } from "./stream-store.js";

/** A stream: its record and, unless lost, its live state. */
export interface StreamEntry {
  record: StreamRecord;
  live: BufferStream;
  log?: SegmentLog;
}

export interface StreamsOptions {
  /** `<state-dir>/buffer`. */
  dir: string;
  /** The most bytes all streams together may hold (capacity plus retention). */
  memoryBudgetBytes: number;
  logger: Logger;
  /** How often durable logs are synced to disk. */
  syncIntervalMs?: number;
}

/** The live configuration of a stream's definition. */
export function streamConfig(id: string, definition: Stream): StreamConfig {
  return {
    id,
    capacityBytes: Number(definition.capacityBytes),
    retentionBytes: Number(definition.retentionBytes),
    producerCount: definition.producerCount,
    ...(definition.shardCount > 1 ? { shard: { index: definition.shardIndex, count: definition.shardCount } } : {}),
    groups: definition.consumerGroups.map((g) => ({
      name: g.name,
      mode: g.mode === DeliveryMode.LATEST_ONLY ? "latest" : "reliable",
      maxInFlight: g.maxInFlight,
      maxInFlightBytes: Number(g.maxInFlightBytes),
      ackTimeoutMs: g.ackTimeoutMs,
    })),
  };
}

export class Streams {
  readonly #store: StreamStore;
  readonly #entries = new Map<string, StreamEntry>();
  readonly #tokenKey: Buffer;
  readonly #options: StreamsOptions;

  constructor(options: StreamsOptions) {
    this.#options = options;
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    this.#store = new StreamStore(join(options.dir, "buffer.db"));
    this.#tokenKey = loadOrCreateKey(join(options.dir, "token.key"));
    for (const record of this.#store.all()) this.#restore(record);
  }

  /** Publish tokens are derived from the stream id with a key of the buffer's: never stored, shown again on a retry. */
  tokenFor(id: string): string {
    return `lclsp1.${createHmac("sha256", this.#tokenKey).update(id).digest("base64url")}`;
  }

  tokenMatches(id: string, token: string): boolean {
    const expected = Buffer.from(this.tokenFor(id));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Bytes promised to streams (capacity plus retention of every live stream). */
  get committedBytes(): number {
    let sum = 0;
    for (const { live, record } of this.#entries.values()) {
      if (record.state !== "lost" && record.state !== "drained") sum += live.config.capacityBytes + live.config.retentionBytes;
    }
    return sum;
  }

  /** Creates a stream, or returns the owner's stream with the same request id. */
  create(record: StreamRecord): { entry: StreamEntry; created: boolean } {
    const earlier = record.requestId ? this.#store.findByRequest(record.owner, record.requestId) : undefined;
    if (earlier) return { entry: this.#entries.get(earlier)!, created: false };
    if (this.#store.exists(record.id)) {
      throw rpcError(Code.AlreadyExists, bufferDomain, "STREAM_EXISTS", `streams/${record.id} already exists; choose another stream_id or leave it empty`);
    }
    const want = Number(record.definition.capacityBytes + record.definition.retentionBytes);
    const free = this.#options.memoryBudgetBytes - this.committedBytes;
    if (want > free) {
      throw rpcError(
        Code.ResourceExhausted,
        bufferDomain,
        "BUFFER_FULL",
        `the buffer can promise ${free} more bytes but the stream asks for ${want} (capacity plus retention); ask for less or wait for streams to drain`,
        {
          metadata: { free_bytes: String(free) },
        },
      );
    }
    this.#store.insert(record);
    return { entry: this.#open(record, true), created: true };
  }

  get(id: string): StreamEntry | undefined {
    return this.#entries.get(id);
  }

  all(): StreamEntry[] {
    return [...this.#entries.values()];
  }

  delete(id: string, error: unknown): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    entry.live.fail(error);
    entry.live.close();
    entry.log?.destroy();
    rmSync(join(this.#options.dir, "streams", id), { recursive: true, force: true });
    this.#entries.delete(id);
    this.#store.delete(id);
  }

  close(): void {
    for (const { live, log } of this.#entries.values()) {
      live.close();
      log?.close();
    }
    this.#store.close();
  }

  #open(record: StreamRecord, fresh: boolean): StreamEntry {
    const config = streamConfig(record.id, record.definition);
    let log: SegmentLog | undefined;
    let live: BufferStream;
    if (record.definition.durable) {
      const opened = SegmentLog.open(join(this.#options.dir, "streams", record.id), { syncIntervalMs: this.#options.syncIntervalMs });
      log = opened.log;
      live = new BufferStream(config, log);
      if (!fresh) live.restore(opened.replay);
    } else {
      live = new BufferStream(config);
    }
    live.state = record.state;
    live.stateReason = record.stateReason;
    live.onStateChange = (s) => {
      record.state = s.state;
      record.stateReason = s.stateReason;
      this.#store.setState(record.id, s.state, s.stateReason);
    };
    const entry: StreamEntry = { record, live, log };
    this.#entries.set(record.id, entry);
    return entry;
  }

  #restore(record: StreamRecord) {
    const entry = this.#open(record, false);
    if (record.definition.durable || record.state === "drained" || record.state === "lost") return;
    const reason = "the buffer restarted and the stream was not durable: batches it held were lost";
    entry.live.markLost(reason);
    this.#options.logger.error({ stream: record.id }, `stream ${record.id} lost: ${reason}`);
  }
}

function loadOrCreateKey(path: string): Buffer {
  if (existsSync(path)) return readFileSync(path);
  const key = randomBytes(32);
  writeFileSync(path, key, { mode: 0o600 });
  return key;
}
