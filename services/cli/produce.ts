/** `lclstream produce`: runs the producer pipeline as one rank (what producer jobs run); `lclstream producer serve`: the ProducerService. */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { SingleBar } from "cli-progress";
import { parse as parseYaml } from "yaml";
import { createMeshTransportFromCertDir } from "../common/client.js";
import { createLogger } from "../common/logger.js";
import { readProducerConfig } from "../producer/config.js";
import { checkPipeline } from "../producer/pipeline.js";
import { oneLine, produce, producerFailurePrefix, rankFromEnvironment, type Progress } from "../producer/run.js";
import type { ProducerServerConfig } from "../producer/server.js";
import { addServeOptions, collect, serveConfig, serveUntilSignal } from "./options.js";

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

/**
 * A sharded stream's buffer URLs, streams and tokens come as comma-separated
 * lists, one entry per shard; rank r publishes to shard r % N. Returns this
 * rank's entry of each list.
 */
export function shardOf(lists: string[], rank: number): string[] {
  const split = lists.map((l) => l.split(",").map((x) => x.trim()));
  const n = split[0]!.length;
  if (split.some((l) => l.length !== n)) {
    throw new Error(`the buffer URL, stream and token lists differ in length (${split.map((l) => l.length).join(", ")}); give one entry per shard in each`);
  }
  return split.map((l) => l[rank % n]!);
}

export function registerProduceCommand(program: Command): void {
  const producer = program.command("producer").description("the producer service: its catalog, and batches streamed straight to the caller");
  addServeOptions(producer.command("serve").description("run the producer service"), "producer service")
    .option("--data-root <dir>", "a directory HDF5 sources may read (repeatable)", collect, [])
    .action(async (o) => {
      const base = await serveConfig(o);
      // The service's code, loaded only to serve: a producer rank (`produce`) needs none of it.
      const { build: buildProducerService } = await import("../producer/server.js");
      const server = await buildProducerService({
        certDir: base.certDir,
        caUrl: base.caUrl,
        host: base.host,
        port: base.port,
        metricsPort: base.metricsPort,
        proxyIdentity: base.proxyIdentity,
        dataRoots: o.dataRoot.length ? o.dataRoot : base.dataRoots,
        policyFile: base.policyFile,
        admins: base.admins,
        submitters: base.submitters,
        catalog: base.catalog,
      } as ProducerServerConfig);
      await serveUntilSignal("producer", server);
    });

  program
    .command("produce")
    .description("run the producer pipeline (source, processing, batching, serializer, handlers) as one rank")
    .requiredOption("--config <file>", "the producer config, YAML or JSON (see docs/producer.md)")
    .option("--rank <n>", "this rank (default: $LCLSTREAM_RANK, $SLURM_PROCID, $PMI_RANK, or 0)", Number)
    .option("--ranks <n>", "the rank count (default: $LCLSTREAM_RANK_COUNT, $SLURM_NTASKS, $PMI_SIZE, or 1)", Number)
    .option("--start-event <n>", "resume from this position of the source's event order", Number, 0)
    .option("--max-events <n>", "stop after this many of this rank's events", Number, 0)
    .option("--buffer-url <url>", "the buffer, for a buffer handler (default: $LCLSTREAM_BUFFER_URL); for a sharded stream, one per shard, comma-separated")
    .option("--stream <name>", "the stream, streams/ID (default: $LCLSTREAM_STREAM); sharded: one per shard, comma-separated")
    .option("--token <token>", "the stream's publish token (default: $LCLSTREAM_PUBLISH_TOKEN); sharded: one per shard, comma-separated")
    .option("--cert-dir <dir>", "cert directory for the buffer (default: $LCLSTREAM_CERT_DIR)")
    .action(async (o) => {
      const { config, notes } = readProducerConfig(parseYaml(await readFile(o.config, "utf8")), o.config);
      notes.push(...checkPipeline(config));
      for (const note of notes) console.error(`note: ${note}`);
      const fromEnv = rankFromEnvironment();
      const rank = o.rank ?? fromEnv.rank;
      const ranks = o.ranks ?? fromEnv.ranks;
      const bufferHandler = config.data_handlers.find((h) => h.type === "BufferStreamingDataHandler");
      let buffer;
      if (bufferHandler?.type === "BufferStreamingDataHandler") {
        const url = o.bufferUrl ?? bufferHandler.url ?? process.env.LCLSTREAM_BUFFER_URL;
        const stream = o.stream ?? bufferHandler.stream ?? process.env.LCLSTREAM_STREAM;
        const token = o.token ?? bufferHandler.token ?? process.env.LCLSTREAM_PUBLISH_TOKEN;
        const certDir = o.certDir ?? process.env.LCLSTREAM_CERT_DIR;
        if (!url || !stream || !token || !certDir) {
          throw new Error(
            "the buffer handler needs --buffer-url, --stream, --token and --cert-dir (or LCLSTREAM_BUFFER_URL, LCLSTREAM_STREAM, LCLSTREAM_PUBLISH_TOKEN, LCLSTREAM_CERT_DIR)",
          );
        }
        const shard = shardOf([url, stream, token], rank);
        buffer = { transport: await createMeshTransportFromCertDir(shard[0]!, certDir), stream: shard[1]!, token: shard[2]! };
      }

      const abort = new AbortController();
      process.once("SIGINT", () => abort.abort(new Error("interrupted")));
      process.once("SIGTERM", () => abort.abort(new Error("terminated")));
      const tty = process.stderr.isTTY;
      const bar = tty
        ? new SingleBar({ format: "rank {rank}/{ranks} [{bar}] {value} events | {rate} ev/s | {mbps} MB/s", hideCursor: true }, undefined)
        : undefined;
      bar?.start(0, 0, { rank, ranks, rate: 0, mbps: 0 });
      let last = 0;
      const report = (p: Progress, final = false) => {
        const line = {
          rank,
          ranks,
          events: p.events,
          batches: p.batches,
          bytes: p.bytes,
          seconds: Number(p.seconds.toFixed(3)),
          events_per_second: Math.round(p.events / p.seconds),
          mb_per_second: Number(mb(p.bytes / p.seconds)),
          skipped_events: p.skipped,
        };
        if (bar) {
          bar.setTotal(p.events);
          bar.update(p.events, { rate: line.events_per_second, mbps: line.mb_per_second });
        } else if (final || p.seconds - last >= 1) {
          last = p.seconds;
          console.log(JSON.stringify(final ? { ...line, done: true } : line));
        }
      };
      let totals;
      try {
        totals = await produce(config, {
          rank,
          ranks,
          startEvent: o.startEvent,
          maxEvents: o.maxEvents,
          buffer,
          logger: createLogger("produce"),
          onProgress: report,
          signal: abort.signal,
        });
      } catch (error) {
        bar?.stop();
        // One line the request service finds in the job's log and shows the request's owner.
        throw new Error(`${producerFailurePrefix(rank)}${oneLine(error)}`, { cause: error });
      }
      report(totals, true);
      bar?.stop();
      if (tty)
        console.error(
          `rank ${rank}/${ranks}: ${totals.events} events in ${totals.batches} batches, ${mb(totals.bytes)} MB, ${mb(totals.bytes / totals.seconds)} MB/s`,
        );
    });
}
