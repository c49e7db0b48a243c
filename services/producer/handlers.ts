/**
 * Where batches go: the buffer (Publish with the stream's token, resuming
 * after a broken connection from the seq the buffer reports, so nothing is
 * lost and nothing is taken twice), files, or a ZeroMQ socket as lclstreamer
 * streams them.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError, type ContextValues, createClient, createContextValues } from "@connectrpc/connect";
import { backoffMs, sleep } from "../common/backoff.js";
import { publishedBatches } from "../common/client.js";
import type { ByteParts } from "../common/byte-parts.js";
import type { Logger } from "../common/logger.js";
import { WireBufferService } from "../buffer/wire.js";
import type { Transport } from "@connectrpc/connect";
import type { HandlerConfig } from "./config.js";
import type { ProducedBatch } from "./pipeline.js";

/** Takes batches in order; `finish` after the last one. */
export interface BatchHandler {
  /** Takes a batch; what it reads of it after this resolves, it holds (batch.retain). */
  handle(batch: ProducedBatch): Promise<void>;
  /** Whether it may read a batch after handle() resolved without holding it (a ZeroMQ send may): then nothing is reused. */
  readsLater?: boolean;
  /** After the last batch; `trailer` is what lclstreamer's handlers write then (SIMPLON's stop message). */
  finish(totals: { batches: number; events: number; skipped?: number }, trailer?: Uint8Array[]): Promise<void>;
  close(): void;
}

type FileHandlerConfig = Extract<HandlerConfig, { type: "BinaryFileWritingDataHandler" }>;
type StreamingHandlerConfig = Extract<HandlerConfig, { type: "BinaryDataStreamingDataHandler" }>;

/**
 * lclstreamer's BinaryFileWritingDataHandler: each batch to
 * `{write_directory}/{file_prefix}_r{rank}_{counter}.{file_suffix}` (no `_`
 * when the prefix is empty or ends with one), the directory made first.
 */
export function createFileHandler(config: FileHandlerConfig, rank: number): BatchHandler {
  let counter = 0;
  const prefix = config.file_prefix && !config.file_prefix.endsWith("_") ? `${config.file_prefix}_` : config.file_prefix;
  const made = mkdir(config.write_directory, { recursive: true });
  return {
    async handle(b) {
      await made;
      for (const m of b.messages) await writeFile(join(config.write_directory, `${prefix}r${rank}_${counter++}.${config.file_suffix}`), m);
    },
    async finish(_, trailer = []) {
      await made;
      for (const m of trailer) await writeFile(join(config.write_directory, `${prefix}r${rank}_${counter++}.${config.file_suffix}`), m);
    },
    close() {},
  };
}

/** How long, at the end, queued messages may take to reach a ZeroMQ peer before they are dropped. */
const zmqLingerMs = 30_000;

/**
 * lclstreamer's BinaryDataStreamingDataHandler: each batch's bytes (the HDF5
 * file, or the encoded batch) as one message on a ZeroMQ PUSH socket that
 * binds (`role: server`) or connects (`client`) to every url, queueing at most
 * 5 messages as lclstreamer does; a send waits while the queue is full.
 */
export async function createZmqHandler(config: StreamingHandlerConfig, logger: Logger): Promise<BatchHandler> {
  const { Push } = await import("zeromq");
  const socket = new Push({ sendHighWaterMark: 5, linger: 0 });
  for (const url of config.urls) {
    if (config.role === "server") await socket.bind(url);
    else socket.connect(url);
  }
  logger.info({ urls: config.urls, role: config.role }, "streaming batches over ZeroMQ PUSH");
  return {
    readsLater: true, // a send may resolve before ZeroMQ is done with the message's memory
    async handle(b) {
      for (const m of b.messages) await socket.send(m);
    },
    async finish(_, trailer = []) {
      for (const m of trailer) await socket.send(m);
      socket.linger = zmqLingerMs;
      socket.close();
    },
    close() {
      if (!socket.closed) socket.close();
    },
  };
}

const MiB = 1024 * 1024;

/** Errors after which publishing again cannot help. */
const permanent = new Set([
  Code.PermissionDenied,
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.NotFound,
  Code.ResourceExhausted,
  Code.Unauthenticated,
  Code.OutOfRange,
]);

export interface BufferHandlerOptions {
  transport: Transport;
  stream: string;
  token: string;
  rank: number;
  logger: Logger;
  /** Batches kept for resending until the buffer confirms them; default 64 MiB. */
  maxUnconfirmedBytes?: number;
  /** How long to keep trying to reach the buffer; default 120 s. */
  retryForMs?: number;
  /** The largest message the buffer takes, in bytes; default 64 MiB, as the servers. */
  maxMessageBytes?: number;
  signal: AbortSignal;
}

interface Retained {
  seq: number;
  bytes: ByteParts;
  /** Lets go of the batch's memory (ProducedBatch.retain). */
  letGo: () => void;
}

/**
 * Publishes batches of one rank. Batches stay in memory until the buffer
 * confirms them (its next_seq for the rank passed them); after a broken
 * connection the handler asks the buffer where the rank stands and sends
 * again from there. Batches the buffer already has are dropped by it.
 */
export function createBufferHandler(options: BufferHandlerOptions): BatchHandler {
  const wire = createClient(WireBufferService, options.transport) as unknown as {
    publish(m: AsyncIterable<unknown>, o: { signal: AbortSignal; contextValues?: ContextValues }): Promise<{ nextSeq: bigint }>;
  };
  // The call that carries the batches (not the short ones asking where the rank stands).
  const carryingBatches = createContextValues().set(publishedBatches, true);
  const maxUnconfirmed = options.maxUnconfirmedBytes ?? 64 * MiB;
  const maxMessageBytes = options.maxMessageBytes ?? 64 * MiB;
  // close() ends the publish call whatever state it is in: a rank that failed
  // must not be kept alive by an open stream to the buffer.
  const closed = new AbortController();
  const signal = AbortSignal.any([options.signal, closed.signal]);
  const retained: Retained[] = [];
  let retainedBytes = 0;
  /** Bytes handed to the handler since it last asked the buffer in the background. */
  let publishedSinceAsked = 0;
  // One past the last seq handed to the transport (the publish call took it), and one past the last queued:
  // the difference is the pipeline's lead.
  let taken = 0;
  let queued = 0;
  let wake: (() => void) | undefined;
  let ended: { batches: number; events: number; skipped?: number } | undefined;
  let failure: unknown;

  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const waitForNews = () => new Promise<void>((resolve) => (wake = resolve));
  // The pipeline waits here while more than `maxAhead` batches wait for the transport: HTTP/2 flow control
  // (and the buffer's capacity behind it) paces the producer, not sleeps.
  const maxAhead = 2;
  let onTaken: (() => void) | undefined;
  const wakePipeline = () => {
    onTaken?.();
    onTaken = undefined;
  };
  const took = (seq: number) => {
    taken = Math.max(taken, seq + 1);
    wakePipeline();
  };

  const open = { kind: { case: "open", value: { stream: options.stream, producerRank: options.rank, publishToken: options.token } } };

  /**
   * Asks the buffer how far the rank got (a Publish of nothing but `open`
   * answers with the rank's next seq, for anyone holding the token) and
   * forgets what it has.
   */
  let confirming: Promise<number> | undefined;
  /** One confirmation at a time: a caller while one is under way shares it. */
  function confirm(): Promise<number> {
    confirming ??= confirmOnce().finally(() => (confirming = undefined));
    return confirming;
  }
  async function confirmOnce(): Promise<number> {
    const { nextSeq } = await wire.publish(
      (async function* () {
        yield open;
      })(),
      { signal },
    );
    const next = Number(nextSeq);
    while (retained.length && retained[0]!.seq < next) {
      const done = retained.shift()!;
      retainedBytes -= done.bytes.byteLength;
      done.letGo();
    }
    notify();
    return next;
  }

  async function* messages(from: number) {
    yield open;
    let next = from;
    for (;;) {
      // Retained seqs are contiguous: confirmation only drops a prefix.
      const first = retained[0]?.seq ?? next;
      if (next < first) next = first;
      const item = retained[next - first];
      if (item) {
        next = item.seq + 1;
        yield { kind: { case: "batch", value: item.bytes } };
        took(item.seq);
        continue;
      }
      if (ended) break;
      await waitForNews();
    }
    yield {
      kind: { case: "done", value: { batchCount: BigInt(ended.batches), eventCount: BigInt(ended.events), skippedEventCount: BigInt(ended.skipped ?? 0) } },
    };
  }

  /** Publishes until done, reconnecting after transient failures. */
  const publishing = (async () => {
    let from = 0;
    let giveUpAt = Date.now() + (options.retryForMs ?? 120_000);
    for (let attempt = 0; ; attempt++) {
      try {
        if (attempt > 0) from = await confirm();
        await wire.publish(messages(from), { signal, contextValues: carryingBatches });
        for (const done of retained.splice(0)) done.letGo();
        retainedBytes = 0;
        return;
      } catch (error) {
        const e = ConnectError.from(error);
        if (signal.aborted || permanent.has(e.code) || Date.now() > giveUpAt) throw e;
        const delay = backoffMs(attempt);
        options.logger.warn({ err: e, attempt, delayMs: delay }, "publishing to the buffer broke; resuming");
        await sleep(delay);
        if (attempt === 0) giveUpAt = Date.now() + (options.retryForMs ?? 120_000);
      }
    }
  })().catch((error) => {
    failure = error;
    notify();
    wakePipeline();
    throw error;
  });
  publishing.catch(() => undefined);
  // Unconfirmed batches are confirmed now and then, so memory stays bounded.
  const confirmer = setInterval(() => void confirm().catch(() => undefined), 1000);
  confirmer.unref();

  return {
    async handle(b) {
      if (failure) throw failure;
      // The message is the batch plus a few bytes of framing.
      if (b.bytes.byteLength + 64 > maxMessageBytes) {
        throw new ConnectError(
          `batch of ${(b.bytes.byteLength / 1e6).toFixed(0)} MB is over the ${(maxMessageBytes / MiB).toFixed(0)} MiB message limit; lower batch_size`,
          Code.ResourceExhausted,
        );
      }
      // Sent but not yet confirmed stays bounded: the buffer says how far it got. Past the bound the rank waits
      // for the answer. What the buffer has not confirmed is at most the HTTP/2 windows' worth in flight, so one
      // ask is enough; it pauses only when the buffer took nothing since the last.
      while (retainedBytes > maxUnconfirmed) {
        const before = retainedBytes;
        await confirm().catch(() => undefined);
        if (failure) throw failure;
        if (retainedBytes >= before) await new Promise((r) => setTimeout(r, 5)); // the buffer took nothing more yet
      }
      retained.push({ seq: Number(b.batch.seq), bytes: b.bytes, letGo: b.retain() });
      retainedBytes += b.bytes.byteLength;
      // It asks in the background once three quarters of the bound are unconfirmed, so that it waits only when
      // the buffer falls behind, not for every round trip (3-14 ms, measured); and at most once per half bound
      // published, so that a buffer behind is not asked again and again (by perf, an ask costs the buffer some 1.5 ms of CPU).
      publishedSinceAsked += b.bytes.byteLength;
      if (retainedBytes > (maxUnconfirmed * 3) / 4 && publishedSinceAsked > maxUnconfirmed / 2 && !confirming) {
        publishedSinceAsked = 0;
        void confirm().catch(() => undefined);
      }
      queued = Number(b.batch.seq) + 1;
      notify();
      while (queued - taken > maxAhead && !failure && !signal.aborted) await new Promise<void>((r) => (onTaken = r));
      if (failure) throw failure;
    },
    async finish(totals) {
      ended = totals;
      notify();
      try {
        await publishing;
      } finally {
        clearInterval(confirmer);
      }
    },
    close() {
      clearInterval(confirmer);
      closed.abort(new ConnectError("the producer stopped", Code.Canceled));
      wakePipeline();
    },
  };
}
