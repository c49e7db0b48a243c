/**
 * The buffer server: BufferService (wire view) over mTLS, streams under
 * `<state-dir>/buffer/`, per-stream and per-group Prometheus gauges.
 */
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { Counter, Gauge } from "prom-client";
import { z } from "zod";
import type { HandlerContext } from "@connectrpc/connect";
import { BufferService, type SubscribeRequest } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { ByteParts } from "../common/byte-parts.js";
import { dataPathMethods } from "../common/data-path.js";
import { Policy } from "../common/policy.js";
import { joinAsService, policySettingsShape, serviceSettingsShape, serveInMesh, type ServiceDeps } from "../common/service-config.js";
import { serverSettingsSchema, type LclstreamServer, type ServiceRegistration } from "../common/server.js";
import { createBufferService, type BufferImplementation, type WirePublishRequest, type WireSubscribeResponse } from "./buffer-service.js";
import { RateMeters } from "./rates.js";
import { Streams } from "./streams.js";
import { WireBufferService } from "./wire.js";

const MiB = 1024 * 1024;

/** The buffer server's configuration. */
export const bufferConfigSchema = z.strictObject({
  /** Directory holding `buffer/` (the stream records, durable streams' logs). */
  stateDir: z.string().min(1),
  ...serviceSettingsShape,
  ...policySettingsShape,
  /** The most bytes all streams may hold together (capacity plus retention). */
  memoryBudgetBytes: z
    .number()
    .int()
    .positive()
    .default(2048 * MiB),
  /** Capacity of a stream that does not ask for one. */
  defaultCapacityBytes: z
    .number()
    .int()
    .positive()
    .default(256 * MiB),
  /** How often durable logs are synced to disk (written records already survive a crash of the buffer). */
  syncIntervalMs: z.number().int().positive().default(100),
  /** A quiet subscription gets a heartbeat this often, so proxies keep it open. */
  heartbeatMs: z.number().int().positive().default(15_000),
  maxMessageBytes: serverSettingsSchema.shape.maxMessageBytes,
  nativeDataPath: serverSettingsSchema.shape.nativeDataPath,
});

export type BufferConfig = z.input<typeof bufferConfigSchema>;

/** A running buffer. */
export interface BufferServer {
  url: string;
  /** The Prometheus endpoint, when a metrics port was given. */
  metricsUrl: string | undefined;
  server: LclstreamServer;
  streams: Streams;
  close(): Promise<void>;
}

/**
 * Serves BufferService with the wire view; reflection and health describe the
 * public service. The implementation works on ByteParts: each path converts
 * at its edge. connect hands a batch over as one Uint8Array and needs one
 * back; the direct path hands over the chunks a batch arrived in (a small
 * batch as one Uint8Array) and sends ByteParts as they are.
 */
export function bufferRegistration(implementation: BufferImplementation): ServiceRegistration {
  return {
    service: WireBufferService,
    describedAs: BufferService,
    implementation: atTheEdge(implementation, (bytes) => bytes.contiguous()),
    direct: dataPathMethods.map((m) => m.name),
    directImplementation: atTheEdge(implementation, (bytes) => bytes),
  };
}

/** The implementation as a transport serves it, with `out` applied to each batch sent. */
function atTheEdge(implementation: BufferImplementation, out: (bytes: ByteParts) => Uint8Array | ByteParts): ServiceRegistration["implementation"] {
  async function* batchesIn(requests: AsyncIterable<{ kind: { case?: string; value?: unknown } }>): AsyncIterable<WirePublishRequest> {
    for await (const request of requests) {
      const { kind } = request;
      if (kind.case === "batch" && !(kind.value instanceof ByteParts)) yield { kind: { case: "batch", value: new ByteParts([kind.value as Uint8Array]) } };
      else yield request as WirePublishRequest;
    }
  }
  async function* batchesOut(responses: AsyncIterable<WireSubscribeResponse>) {
    for await (const response of responses) {
      yield response.kind.case === "batch" ? { ...response, kind: { case: "batch" as const, value: out(response.kind.value) } } : response;
    }
  }
  return {
    ...implementation,
    publish: (requests: AsyncIterable<{ kind: { case?: string; value?: unknown } }>, ctx: HandlerContext) => implementation.publish(batchesIn(requests), ctx),
    subscribe: (request: SubscribeRequest, ctx: HandlerContext) => batchesOut(implementation.subscribe(request, ctx)),
    // The wire view is a descriptor made at run time, which connect cannot type;
    // the compiler has checked BufferImplementation against buffer.proto.
  } as unknown as ServiceRegistration["implementation"];
}

/**
 * Lets V8's old generation grow to four times what survived a collection
 * before it collects again, in a process that is a buffer (`lclstream
 * buffer serve`), unless node was given its own `--heap-growing-percent`.
 *
 * Why: the buffer's own objects are few (its heap about 20 MB) but a batch
 * stream promotes many short-lived ones, and with the headroom V8 chose
 * (about 23 MB) it started incremental marking every 50-90 ms, through a
 * task, far below its limit: in the 1 MiB relay, 28 full collections in 2
 * s. Measured over the relay, interleaved: 2.2-2.5 ms of the buffer's CPU a
 * MiB against 3.1-3.3, 495-525 MB/s against 388-442, and the same peak RSS
 * (1.02 GB) and memory-scenario bound. Set after V8 started, as V8 reads
 * it at each collection.
 */
export function growHeapInLargeSteps(): void {
  if ([...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((arg) => arg.includes("heap-growing-percent"))) return;
  setFlagsFromString("--heap-growing-percent=300");
}

export async function build(input: BufferConfig, deps: ServiceDeps = {}): Promise<BufferServer> {
  const config = bufferConfigSchema.parse(input);
  const { membership, logger } = await joinAsService("buffer", config, deps);
  const policy = Policy.fromConfig(config, membership.identity.trustDomain);
  const streams = new Streams({
    dir: join(config.stateDir, "buffer"),
    memoryBudgetBytes: config.memoryBudgetBytes,
    logger,
    syncIntervalMs: config.syncIntervalMs,
  });
  const rates = new RateMeters();
  try {
    const server = await serveInMesh(
      "buffer",
      config,
      { membership, logger },
      [
        bufferRegistration(
          createBufferService({ streams, policy, rates, limits: { defaultCapacityBytes: config.defaultCapacityBytes }, heartbeatMs: config.heartbeatMs }),
        ),
      ],
      { nativeDataPath: config.nativeDataPath },
    );
    registerStreamMetrics(server, streams);
    return {
      url: server.url,
      metricsUrl: server.metricsUrl,
      server,
      streams,
      async close() {
        await server.close();
        rates.close();
        streams.close();
        membership.leave();
      },
    };
  } catch (error) {
    rates.close();
    streams.close();
    membership.leave();
    throw error;
  }
}

/**
 * Per-stream and per-group metrics, read from the live streams at each
 * scrape: cumulative values as counters (`_total`, for rate()), the others
 * as gauges.
 */
function registerStreamMetrics(server: LclstreamServer, streams: Streams) {
  type Entry = ReturnType<Streams["all"]>[number];
  type Group = Entry["live"]["groups"][number];
  type Row = [Record<string, string>, number];
  const metric = (kind: "counter" | "gauge", name: string, help: string, labelNames: string[], rows: () => Row[]) => {
    const options = { name, help, labelNames, registers: [server.metrics.registry] };
    // A counter's value is the stream's own count: cleared and added to at each scrape.
    if (kind === "counter")
      new Counter({
        ...options,
        collect() {
          this.reset();
          for (const [labels, value] of rows()) this.inc(labels, value);
        },
      });
    else
      new Gauge({
        ...options,
        collect() {
          this.reset();
          for (const [labels, value] of rows()) this.set(labels, value);
        },
      });
  };
  const perStream = (kind: "counter" | "gauge", name: string, help: string, value: (e: Entry) => number) =>
    metric(kind, name, help, ["stream"], () => streams.all().map((e): Row => [{ stream: e.record.id }, value(e)]));
  const perGroup = (kind: "counter" | "gauge", name: string, help: string, value: (g: Group, e: Entry) => number) =>
    metric(kind, name, help, ["stream", "group"], () =>
      streams.all().flatMap((e) => e.live.groups.map((g): Row => [{ stream: e.record.id, group: g.config.name }, value(g, e)])),
    );
  perStream("counter", "lclstream_buffer_published_bytes_total", "Bytes of batches accepted from producers.", (e) => e.live.publishedBytes);
  perStream("counter", "lclstream_buffer_published_batches_total", "Batches accepted from producers.", (e) => e.live.nextSeq - 1);
  perStream(
    "gauge",
    "lclstream_buffer_buffered_bytes",
    "Bytes held for groups that have not acknowledged them (bounded by the capacity).",
    (e) => e.live.bufferedBytes,
  );
  perStream("gauge", "lclstream_buffer_capacity_bytes", "The stream's capacity.", (e) => e.live.config.capacityBytes);
  perGroup("counter", "lclstream_buffer_delivered_bytes_total", "Bytes delivered to a group, redeliveries included.", (g) => g.counters.deliveredBytes);
  perGroup(
    "counter",
    "lclstream_buffer_redelivered_batches_total",
    "Batches delivered again after a consumer left or timed out.",
    (g) => g.counters.redeliveredBatches,
  );
  // Each producer rank, as the buffer sees it publish (a rank's job runs elsewhere, so its figures are here).
  const perRank = (kind: "counter" | "gauge", name: string, help: string, value: (p: Entry["live"]["producers"][number]) => number) =>
    metric(kind, name, help, ["stream", "rank"], () =>
      streams.all().flatMap((e) => e.live.producers.map((p, slot): Row => [{ stream: e.record.id, rank: String(e.live.rankOf(slot)) }, value(p)])),
    );
  perRank("counter", "lclstream_buffer_producer_batches_total", "Batches a producer rank has published.", (p) => Number(p.nextSeq));
  perRank("counter", "lclstream_buffer_producer_events_total", "Events in them.", (p) => p.events);
  perRank("counter", "lclstream_buffer_producer_bytes_total", "Bytes of them accepted since this buffer started.", (p) => p.bytes);
  perRank("gauge", "lclstream_buffer_producer_connected", "1 while the rank has a Publish call open.", (p) => (p.connected > 0 ? 1 : 0));
  perGroup("gauge", "lclstream_buffer_lag_batches", "Batches published and not yet acknowledged by the group.", (g, e) =>
    g.config.mode === "reliable" ? e.live.nextSeq - 1 - g.counters.ackedBatches : 0,
  );
}
