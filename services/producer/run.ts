/**
 * Runs one producer rank: the pipeline into its handlers, with progress
 * counters, and the rank's totals at the end. What `lclstream produce` and
 * the producer jobs run.
 */
import { ConnectError, type Transport } from "@connectrpc/connect";
import type { Logger } from "../common/logger.js";
import type { ProducerConfig } from "./config.js";
import { createBufferHandler, createFileHandler, createZmqHandler, type BatchHandler } from "./handlers.js";
import { openSource, runPipeline } from "./pipeline.js";

/** Rank and rank count: flags first, then what a launcher set (our $mpirun, srun, MPI). */
export function rankFromEnvironment(env: NodeJS.ProcessEnv = process.env): { rank: number; ranks: number } {
  const pick = (...names: string[]) => names.map((n) => env[n]).find((v) => v !== undefined && v !== "");
  return {
    rank: Number(pick("LCLSTREAM_RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK") ?? 0),
    ranks: Number(pick("LCLSTREAM_RANK_COUNT", "SLURM_NTASKS", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE") ?? 1),
  };
}

/**
 * How a failed rank's last words start (`producer rank 1 failed: ...`), so
 * the request service can find them in the job's log.
 */
export const producerFailurePrefix = (rank: number) => `producer rank ${rank} failed: `;

/** Finds a rank's last words in a job's log output; undefined when none. */
export function findProducerFailure(log: string): string | undefined {
  return (
    /producer rank \d+ failed: [^\n]*/.exec(log)?.[0] ??
    (/FATAL ERROR: [^\n]*heap out of memory/.test(log)
      ? "a producer rank ran out of memory (JavaScript heap); lower batch_size or the frames per batch"
      : undefined)
  );
}

/** An error's message on one line, without a stack. */
export function oneLine(error: unknown): string {
  const message = error instanceof ConnectError ? error.rawMessage : error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, "; ");
}

export interface Progress {
  events: number;
  batches: number;
  bytes: number;
  seconds: number;
  /** Events left out as incomplete (skip_incomplete_events). */
  skipped: number;
}

export interface ProduceOptions {
  rank: number;
  ranks: number;
  startEvent?: number;
  maxEvents?: number;
  /** For buffer handlers: a transport to the buffer, and the stream and token (from the config or these). */
  buffer?: { transport: Transport; stream: string; token: string };
  logger: Logger;
  onProgress?: (p: Progress) => void;
  signal: AbortSignal;
}

/** Builds the handlers a config names. */
async function handlersFor(config: ProducerConfig, options: ProduceOptions): Promise<BatchHandler[]> {
  const handlers: BatchHandler[] = [];
  try {
    for (const h of config.data_handlers) {
      if (h.type === "BinaryFileWritingDataHandler") handlers.push(createFileHandler(h, options.rank));
      else if (h.type === "BinaryDataStreamingDataHandler") handlers.push(await createZmqHandler(h, options.logger));
      else if (!options.buffer) {
        throw new Error(
          "the buffer handler needs the buffer's URL, the stream and its publish token (LCLSTREAM_BUFFER_URL, LCLSTREAM_STREAM, LCLSTREAM_PUBLISH_TOKEN)",
        );
      } else handlers.push(createBufferHandler({ ...options.buffer, rank: options.rank, logger: options.logger, signal: options.signal }));
    }
    return handlers;
  } catch (error) {
    for (const h of handlers) h.close();
    throw error;
  }
}

/** Produces this rank's share of the events; resolves with its totals. */
export async function produce(config: ProducerConfig, options: ProduceOptions): Promise<Progress> {
  if (!Number.isInteger(options.rank) || !Number.isInteger(options.ranks) || options.rank < 0 || options.rank >= options.ranks) {
    throw new Error(`rank ${options.rank} of ${options.ranks} makes no sense: ranks count from 0 and stay below the rank count`);
  }
  const source = await openSource(config, { rank: options.rank, ranks: options.ranks, start: options.startEvent ?? 0 });
  const handlers = await handlersFor(config, options).catch((error) => {
    source.close();
    throw error;
  });
  const started = performance.now();
  const progress: Progress = { events: 0, batches: 0, bytes: 0, seconds: 0, skipped: 0 };
  // An abort ends a handler's wait too: a ZeroMQ send to a peer that never comes waits forever, and
  // closing the handler fails it.
  const closeHandlers = () => handlers.forEach((h) => h.close());
  options.signal.addEventListener("abort", closeHandlers, { once: true });
  try {
    const batches = runPipeline(config, source, { ...options, stream: options.buffer?.stream });
    // The source may reuse a batch's memory once every handler is done with it, unless one may read it later.
    const reuse = !handlers.some((h) => h.readsLater);
    let next = await batches.next();
    for (; !next.done; next = await batches.next()) {
      const b = next.value;
      const letGo = b.retain();
      for (const h of handlers) await h.handle(b);
      if (reuse) letGo();
      progress.events += b.events;
      progress.batches++;
      progress.bytes += b.bytes.byteLength;
      progress.skipped = b.skipped;
      progress.seconds = (performance.now() - started) / 1000;
      options.onProgress?.(progress);
    }
    // What the serializer writes after the last batch (SIMPLON's stop message).
    progress.skipped = next.value.skipped;
    for (const h of handlers) await h.finish({ batches: progress.batches, events: progress.events, skipped: progress.skipped }, next.value.trailer);
    progress.seconds = (performance.now() - started) / 1000;
    return progress;
  } finally {
    options.signal.removeEventListener("abort", closeHandlers);
    closeHandlers();
    source.close();
  }
}
