/**
 * `npm run bench`: the data path measured against the physical limit in one
 * run. Every figure is a median of several repetitions, each in separate
 * processes over loopback with mTLS, and is reported as a ratio against a
 * baseline measured in the same run (these machines are shared and noisy).
 *
 * Baselines: raw Node TLS 1.3 process to process, a raw TLS relay through a
 * middle process, and the same relay copying to four sinks. Scenarios: one
 * hop (a producer publishing to the buffer, nobody downstream; and a consumer
 * draining batches the buffer already holds, with the CPU it spends per MiB
 * beside a bare HTTP/2 client's and the raw TLS receiver's), producer ->
 * buffer -> consumer, the same sharded over 1, 2 and 4 buffers (CPU per MiB
 * of each kind of process), fan-out to 1, 2 and 4 consumer groups,
 * publish-to-deliver latency at a moderate rate, the buffer's memory with a
 * stalled consumer, and on the whole mesh (`lclstream up`): setup time
 * (CreateDataRequest to the first batch) and a full data request with peak
 * finding, end to end, and setup time with the producers on Slurm (a
 * one-node cluster on loopback); and the relay with its consumer behind the
 * front door (HAProxy), against the same without.
 *
 * BENCH_REPS (default 3) and BENCH_MEASURE_MS (default 3000) tune the run;
 * BENCH_BUFFER_NODE_ARGS passes flags to the buffer's node (for example
 * `--cpu-prof --cpu-prof-dir=prof` to profile it), BENCH_ROLE_NODE_ARGS to
 * the producers', consumers' and raw TLS processes'; BENCH_ONLY picks
 * scenarios by a regular expression (memory, 64KiB, 1MiB, 4MiB, python, consumers, shards, fan-out, contention, producer, latency, mesh, slurm, psana, front, viewer).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@connectrpc/connect";
import { BufferService, DeliveryMode } from "../gen/lclstream/buffer/v1/buffer_pb.js";
import { Job_State, JobQueueService, LogStream } from "../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService } from "../gen/lclstream/request/v1/request_pb.js";
import { fetchRequest } from "../services/cli/fetch.js";
import { benchSourceDir, updateBenchReadme } from "./table.js";
import { haproxyBinary, startHaproxyFront, type HaproxyFront } from "../test/helpers/haproxy-front.js";
import { startLocalMesh } from "../services/cli/local-mesh.js";
import { psanaPython } from "../services/producer/sources/psana.js";
import { createMeshTransport } from "../services/common/client.js";
import { identityUri } from "../services/common/identity.js";
import { createCertificateAuthority, issueMaterial, readCertDir, writeCertDir } from "../services/common/pki.js";
import { startViewerGateway } from "../services/viewer/gateway.js";
import { chromium } from "playwright-core";
import type { JsonValue } from "@bufbuild/protobuf";
import { debianTool } from "../test/helpers/tools.js";
import { internalConfig, psanaFramesConfig } from "../test/helpers/producer-config.js";
import { freePort } from "../test/helpers/ports.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** A setting from the environment, or the default; anything else ends the run saying what to give. */
function setting<T>(name: string, fallback: T, parse: (text: string) => T | undefined, what: string): T {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = parse(text);
  if (value === undefined) {
    console.error(`${name}=${text} is not ${what}`);
    process.exit(2);
  }
  return value;
}
const positiveInteger = (text: string) => (/^[1-9][0-9]*$/.test(text) ? Number(text) : undefined);
const regExp = (text: string) => {
  try {
    return new RegExp(text);
  } catch {
    return undefined;
  }
};
const reps = setting("BENCH_REPS", 3, positiveInteger, "a positive whole number of repetitions");
const measureMs = setting("BENCH_MEASURE_MS", 3000, positiveInteger, "a positive whole number of milliseconds");
/** What BENCH_ONLY can pick. */
const scenarios = "memory, 64KiB, 1MiB, 4MiB, python, consumers, shards, fan-out, contention, producer, latency, mesh, slurm, psana, front, viewer";
const only = setting("BENCH_ONLY", /./, regExp, "a regular expression (for example 1MiB|fan-out)");
const rolesJs = fileURLToPath(new URL("./roles.js", import.meta.url));
const cliJs = fileURLToPath(new URL("../../bin/lclstream.js", import.meta.url));
const resultsDir = fileURLToPath(new URL("../../bench/results", import.meta.url));

interface Proc {
  child: ChildProcess;
  /** The next JSON line it prints. */
  next(): Promise<any>;
  stop(): void;
}

/** Every process the bench started and that still runs: stopped when the bench exits, however it exits (a closed stdout too). */
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill();
});
function tracked(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once("exit", () => running.delete(child));
  return child;
}

function start(file: string, argv: string[], nodeArgs: string[] = [], command = process.execPath, stderr: "inherit" | "ignore" = "inherit"): Proc {
  const child = tracked(
    spawn(command, [...nodeArgs, file, ...argv], {
      stdio: ["ignore", "pipe", stderr],
      env: { ...process.env, LCLSTREAM_LOG_LEVEL: "warn" },
    }),
  );
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  });
  return {
    child,
    next: () =>
      new Promise((resolve, reject) => {
        const line = lines.shift();
        if (line !== undefined) return resolve(parse(line));
        waiters.push((l) => resolve(parse(l)));
        child.once("exit", (code) => reject(new Error(`${argv[0]} exited with ${code} before answering`)));
      }),
    stop: () => child.kill("SIGTERM"),
  };
}

function parse(line: string): any {
  try {
    return JSON.parse(line);
  } catch {
    return { line };
  }
}

const roleNodeArgs = (process.env.BENCH_ROLE_NODE_ARGS ?? "").split(" ").filter(Boolean);
const role = (name: string, args: object) => start(rolesJs, [name, JSON.stringify({ measureMs, ...args })], roleNodeArgs);
/** The transport lclstream replaces (pyzmq PUSH/PULL on plain TCP), in the system Python, when it has pyzmq. */
const seedScript = fileURLToPath(new URL("../../bench/seed_transport.py", import.meta.url));
const seedRole = (name: string, args: object) => start(seedScript, [name, JSON.stringify({ measureMs, ...args })], [], "python3");
const hasPyzmq = () => spawnSync("python3", ["-c", "import zmq"]).status === 0;
const mbps = (r: { bytes: number; seconds: number }) => r.bytes / r.seconds / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / median(xs);
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "lclstream-bench-"));
  const capacity = 64 * MiB;
  const trustDomain = "bench.lclstream";
  const ca = await createCertificateAuthority({ trustDomain });
  const server = await issueMaterial(ca, { identity: identityUri(trustDomain, "service", "bench"), dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  const user = await issueMaterial(ca, { identity: identityUri(trustDomain, "user", "bench") });
  await writeCertDir(join(dir, "buffer"), server);
  await writeCertDir(join(dir, "user"), user);
  const results: Record<string, { values: number[]; median: number; spread: number; unit: string }> = {};
  const record = (name: string, unit: string, values: number[]) => {
    results[name] = { values, median: median(values), spread: spread(values), unit };
    console.log(`${name.padEnd(48)} ${median(values).toFixed(1).padStart(8)} ${unit}  (spread ${(spread(values) * 100).toFixed(0)}%, n=${values.length})`);
  };
  const repeat = async <T>(fn: () => Promise<T>) => {
    const values: T[] = [];
    for (let i = 0; i < reps; i++) values.push(await fn());
    return values;
  };
  /** Each measure once per repetition, in turn (interleaved), so every series sees the same machine: the series, in order. */
  const interleaved = async <T extends unknown[]>(...measures: { [K in keyof T]: () => Promise<T[K]> }) => {
    const all = measures as (() => Promise<unknown>)[];
    const series = all.map(() => [] as unknown[]);
    for (let i = 0; i < reps; i++) for (const [j, measure] of all.entries()) series[j]!.push(await measure());
    return series as { [K in keyof T]: T[K][] };
  };

  // Baselines: raw TLS, one hop and through a relay process.
  /** Raw TLS process to process: its throughput, and the receiving process's CPU per MiB. */
  const rawHop = async (chunkBytes: number) => {
    const sink = role("tls-sink", { tls: server });
    const { port } = await sink.next();
    const source = role("tls-source", { tls: user, port, chunkBytes });
    const r = await sink.next();
    source.stop();
    return { mbps: mbps(r), cpuMsPerMiB: r.cpuMs / (r.bytes / MiB) };
  };
  /**
   * Raw TLS source -> relay -> `sinks` sinks, each getting every byte (one sink: the two-hop limit):
   * their aggregate MB/s, and each kind of process's CPU per MiB of that aggregate (the sinks' together).
   */
  const rawRelayMeasured = async (chunkBytes: number, sinks = 1) => {
    const sinkProcs = Array.from({ length: sinks }, () => role("tls-sink", { tls: server, announce: true }));
    const ports = await Promise.all(sinkProcs.map(async (sink) => (await sink.next()).port as number));
    const relay = role("tls-relay", { tls: server, to: ports });
    const source = role("tls-source", { tls: user, port: (await relay.next()).port, chunkBytes });
    const [sourceCpu, relayCpu, sinkCpu, cpuMsPerMiB, outs] = await cpuOfWindows([source, relay], sinkProcs);
    source.stop();
    relay.stop();
    return { mbps: outs.reduce((sum, r) => sum + mbps(r), 0), cpuMsPerMiB, sourceCpu, relayCpu, sinkCpu };
  };
  /**
   * The CPU per MiB of two senders (by /proc, from when every receiver is measuring to when all are
   * done) and of the receivers together (by their own count over their windows), per MiB received
   * in all; then their total, and what the receivers printed.
   */
  async function cpuOfWindows(senders: [Proc, Proc], receivers: Proc[]) {
    await Promise.all(receivers.map((r) => r.next())); // { measuring: true }
    const pids = senders.map((p) => p.child.pid!);
    const cpuAtStart = pids.map(cpuMsOf);
    const outs = await Promise.all(receivers.map((r) => r.next()));
    const mib = outs.reduce((n, o) => n + o.bytes, 0) / MiB;
    const [first, second] = pids.map((pid, i) => (cpuMsOf(pid) - cpuAtStart[i]!) / mib) as [number, number];
    const receiving = outs.reduce((n, o) => n + o.cpuMs, 0) / mib;
    return [first, second, receiving, first + second + receiving, outs] as const;
  }
  const rawRelay = async (chunkBytes: number, sinks = 1) => (await rawRelayMeasured(chunkBytes, sinks)).mbps;

  /** The seed's transport: pyzmq PUSH -> PULL on plain TCP, and the receiver's CPU per MiB. */
  const seedHop = async (chunkBytes: number) => {
    const sink = seedRole("sink", {});
    const source = seedRole("source", { port: (await sink.next()).port, chunkBytes });
    const r = await sink.next();
    source.stop();
    return { mbps: mbps(r), cpuMsPerMiB: r.cpuMs / (r.bytes / MiB) };
  };
  /** pyzmq PUSH -> a relay process (PULL, PUSH) -> PULL, as lclstreamer's data reaches a consumer through a forwarder. */
  const seedRelay = async (chunkBytes: number) => {
    const sink = seedRole("sink", {});
    const relay = seedRole("relay", { to: (await sink.next()).port });
    const source = seedRole("source", { port: (await relay.next()).port, chunkBytes });
    const r = await sink.next();
    source.stop();
    relay.stop();
    return mbps(r);
  };

  // The buffer, as deployed: the real `lclstream buffer serve`, one process per group of scenarios.
  const bufferNodeArgs = (process.env.BENCH_BUFFER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  async function launchBuffer(stateName = "state") {
    const proc = start(
      cliJs,
      ["buffer", "serve", "--state-dir", join(dir, stateName), "--cert-dir", join(dir, "buffer"), "--submitter", "user/bench"],
      bufferNodeArgs,
    );
    // Its banner, `buffer: URL (mTLS)`, whatever it logs before.
    const url = await new Promise<string>((resolve) => {
      const lines = createInterface({ input: proc.child.stdout! });
      lines.on("line", (l) => {
        const banner = /^buffer: (https:\/\/\S+) \(mTLS\)$/.exec(l);
        // Not closed: closing would pause the process's stdout, which the other reader of it needs flowing.
        if (banner) resolve(banner[1]!);
      });
    });
    const client = createClient(BufferService, createMeshTransport({ baseUrl: url, tls: user }));
    return { proc, url, client };
  }
  type Buffer = Awaited<ReturnType<typeof launchBuffer>>;

  async function throughBuffer(buffer: Buffer, chunkBytes: number, groups: number, opts: { rate?: number; capacityBytes?: number; stall?: boolean } = {}) {
    const { stream, publishToken } = await buffer.client.createStream({
      stream: {
        capacityBytes: BigInt(opts.capacityBytes ?? 256 * MiB),
        consumerGroups: Array.from({ length: groups }, (_, i) => ({ name: `g${i}`, mode: DeliveryMode.RELIABLE })),
      },
    });
    const common = { tls: user, url: buffer.url, stream: stream!.name, rate: opts.rate, chunkBytes, stall: opts.stall };
    // The CPU of the buffer, the producer and the consumers over the consumers' windows, beside what they received.
    const announce = !opts.stall;
    const consumers = Array.from({ length: groups }, (_, i) => role("subscribe", { ...common, group: `g${i}`, announce }));
    const producer = role("publish", { ...common, token: publishToken });
    const rss = opts.stall ? await sampleRss(buffer.proc.child.pid!, measureMs + 500) : 0;
    const [bufferCpu, producerCpu, consumerCpu, cpuMsPerMiB, outs] = announce
      ? await cpuOfWindows([buffer.proc, producer], consumers)
      : [Number.NaN, Number.NaN, Number.NaN, Number.NaN, await Promise.all(consumers.map((c) => c.next()))];
    producer.stop();
    consumers.forEach((c) => c.stop());
    await buffer.client.deleteStream({ name: stream!.name });
    return {
      mbps: outs.reduce((sum, o) => sum + mbps(o), 0),
      latencies: outs.flatMap((o) => o.latenciesMs ?? []),
      rss,
      cpuMsPerMiB,
      bufferCpu,
      producerCpu,
      consumerCpu,
    };
  }

  /** One hop: a producer publishing into a stream only a latest-only group reads (nothing holds it back). */
  async function oneHop(buffer: Buffer, chunkBytes: number) {
    const { stream, publishToken } = await buffer.client.createStream({
      stream: { capacityBytes: BigInt(256 * MiB), consumerGroups: [{ name: "viewer", mode: DeliveryMode.LATEST_ONLY }] },
    });
    const producer = role("publish", { tls: user, url: buffer.url, stream: stream!.name, chunkBytes, token: publishToken, measure: true });
    const r = await producer.next();
    producer.stop();
    await buffer.client.deleteStream({ name: stream!.name });
    return mbps(r);
  }

  /**
   * One hop as a server stream: the buffer holds `warmup` + `batches` batches
   * published beforehand, and one consumer drains them (nothing else runs
   * meanwhile), timed after the first `warmup` (as the other scenarios time
   * after a warmup window). `role` "subscribe-bare" is the same call on a
   * bare HTTP/2 session: what receiving the stream costs any Node client.
   */
  async function subscribeOneHop(buffer: Buffer, chunkBytes: number, batches: number, warmup: number, consumerRole = "subscribe") {
    return drainHeld(buffer, chunkBytes, batches, warmup, (args) => role(consumerRole, args).next());
  }
  /** The same drain, read by `reader` (given the stream, group and counts); batches `columnar` when asked. */
  async function drainHeld(buffer: Buffer, chunkBytes: number, batches: number, warmup: number, reader: (args: DrainArgs) => Promise<any>, columnar = false) {
    const count = warmup + batches;
    const { stream, publishToken } = await buffer.client.createStream({
      stream: { capacityBytes: BigInt((count + 8) * chunkBytes), consumerGroups: [{ name: "g0", mode: DeliveryMode.RELIABLE }] },
    });
    const common = { tls: user, url: buffer.url, stream: stream!.name, chunkBytes, count, columnar };
    const producer = role("publish", { ...common, token: publishToken });
    await producer.next();
    producer.stop();
    const bufferCpu = cpuMsOf(buffer.proc.child.pid!);
    const r = await reader({ ...common, group: "g0", warmupCount: warmup });
    // The buffer's sending, over the whole drain (warm-up included).
    const bufferCpuMsPerMiB = (cpuMsOf(buffer.proc.child.pid!) - bufferCpu) / ((count * chunkBytes) / MiB);
    await buffer.client.deleteStream({ name: stream!.name });
    return { mbps: mbps(r), cpuMsPerMiB: r.cpuMs / (r.bytes / MiB), bufferCpuMsPerMiB, allCpuMsPerMiB: r.allCpuMsPerMiB as number | undefined };
  }

  /**
   * A producer rank as users run it (`lclstream produce`: a source of random
   * 1 MiB float32 events, the pipeline, encoding and the buffer handler), or
   * the bench's publish role sending one pre-encoded batch again and again,
   * publishing into a stream of the buffer. With `consumer`, a consumer reads
   * it as a live request's does, and the rate is what the group was
   * delivered; without, nobody reads it (a latest-only group) and the rate is
   * what the buffer took. Both from the buffer's counters over one window
   * after a warm-up.
   */
  async function publishing(buffer: Buffer, publisher: "rank" | "role", consumer: boolean) {
    const group = consumer ? { name: "g0", mode: DeliveryMode.RELIABLE } : { name: "viewer", mode: DeliveryMode.LATEST_ONLY };
    const { stream, publishToken } = await buffer.client.createStream({ stream: { capacityBytes: BigInt(256 * MiB), consumerGroups: [group] } });
    const name = stream!.name;
    const common = { tls: user, url: buffer.url, stream: name, chunkBytes: MiB };
    const reader = consumer ? role("subscribe", { ...common, group: "g0", measureMs: measureMs + 60_000 }) : undefined;
    let writer: Proc;
    if (publisher === "role") writer = role("publish", { ...common, token: publishToken });
    else {
      const config = join(dir, "random-rank.json");
      writeFileSync(
        config,
        JSON.stringify({
          source_identifier: "",
          skip_incomplete_events: false,
          event_source: { type: "InternalEventSource", number_of_events_to_generate: 1_000_000 },
          data_sources: { frame: { type: "GenericRandomNumpyArray", array_shape: "512,512", array_dtype: "float32" } },
          processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 1 },
          data_serializer: { type: "NativeBinarySerializer" },
          data_handlers: [{ type: "BufferStreamingDataHandler" }],
        }),
      );
      writer = start(
        cliJs,
        ["produce", "--config", config, "--buffer-url", buffer.url, "--stream", name, "--token", publishToken, "--cert-dir", join(dir, "user")],
        roleNodeArgs,
        process.execPath,
        "ignore", // stopped, it says that it failed: terminated
      );
    }
    const counted = async () => {
      const metrics = (await buffer.client.getStream({ name })).stream?.metrics;
      return Number(consumer ? (metrics?.groups[0]?.deliveredBytes ?? 0n) : (metrics?.publishedBytes ?? 0n));
    };
    // CPU per MiB published, of the publisher and of the buffer: where a rank spends more than the role.
    const cpu = () => [writer, buffer.proc].map((p) => cpuMsOf(p.child.pid!));
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const [bytes0, cpu0, t0] = [await counted(), cpu(), performance.now()];
      await new Promise((r) => setTimeout(r, measureMs));
      const [bytes1, cpu1, t1] = [await counted(), cpu(), performance.now()];
      const mib = (bytes1 - bytes0) / MiB;
      return {
        mbps: (bytes1 - bytes0) / 1e6 / ((t1 - t0) / 1000),
        publisherCpu: (cpu1[0]! - cpu0[0]!) / mib,
        bufferCpu: (cpu1[1]! - cpu0[1]!) / mib,
      };
    } finally {
      writer.stop();
      reader?.stop();
      await buffer.client.deleteStream({ name });
    }
  }

  /**
   * A relay sharded `shards` ways, as a sharded request runs: one buffer
   * process per shard, each with its stream, one producer and one consumer.
   * Over one window after a warm-up: the aggregate delivered MB/s (from the
   * buffers' counters) and the CPU per MiB delivered of the buffers, the
   * producers and the consumers (from /proc), so that what a shard costs can
   * be compared from 1 to 4 shards.
   */
  let shardedRuns = 0;
  async function shardedRelay(shards: number) {
    const run = shardedRuns++;
    const buffers = await Promise.all(Array.from({ length: shards }, (_, i) => launchBuffer(`sharded-${run}-${i}`)));
    const streams = await Promise.all(
      buffers.map((b) =>
        b.client.createStream({ stream: { capacityBytes: BigInt(256 * MiB), consumerGroups: [{ name: "g0", mode: DeliveryMode.RELIABLE }] } }),
      ),
    );
    const common = (i: number) => ({ tls: user, url: buffers[i]!.url, stream: streams[i]!.stream!.name, chunkBytes: MiB });
    // The consumers outlive the window: it is measured here, not by them.
    const consumers = buffers.map((_, i) => role("subscribe", { ...common(i), group: "g0", measureMs: measureMs + 60_000 }));
    const producers = buffers.map((_, i) => role("publish", { ...common(i), token: streams[i]!.publishToken }));
    const deliveredPerShard = async () =>
      (await Promise.all(buffers.map((b, i) => b.client.getStream({ name: streams[i]!.stream!.name })))).map((r) =>
        Number(r.stream?.metrics?.groups[0]?.deliveredBytes ?? 0n),
      );
    const delivered = async () => (await deliveredPerShard()).reduce((sum, n) => sum + n, 0);
    const cpu = (procs: Proc[]) => procs.reduce((sum, p) => sum + cpuMsOf(p.child.pid!), 0);
    const classes = { buffer: buffers.map((b) => b.proc), producer: producers, consumer: consumers };
    try {
      // The window opens once every shard carries data: twelve processes starting on a busy 2-core machine
      // took longer than a fixed warm-up, and their start-up (loading, compiling, handshakes) was counted
      // as CPU per MiB (a window with 4 shards then measured 3-8 times the CPU a MiB of one).
      const flowing = performance.now() + 30_000;
      while ((await deliveredPerShard()).some((n) => n < 16 * MiB) && performance.now() < flowing) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
      const [bytes0, cpu0] = [await delivered(), Object.values(classes).map(cpu)];
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, measureMs));
      const [bytes1, cpu1] = [await delivered(), Object.values(classes).map(cpu)];
      const seconds = (performance.now() - t0) / 1000;
      const mib = (bytes1 - bytes0) / MiB;
      const [buffer, producer, consumer] = cpu1.map((c, i) => (c - cpu0[i]!) / mib);
      return { mbps: (bytes1 - bytes0) / 1e6 / seconds, buffer: buffer!, producer: producer!, consumer: consumer!, total: buffer! + producer! + consumer! };
    } finally {
      [...producers, ...consumers].forEach((p) => p.stop());
      buffers.forEach((b) => b.proc.stop());
    }
  }

  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, totalMemBytes: totalmem(), node: process.version, platform: process.platform };
  console.log(`lclstream bench: ${machine.cpus} x ${machine.cpuModel}, node ${machine.node}; ${reps} repetitions of ${measureMs} ms\n`);
  try {
    if (only.test("memory")) {
      // First, in a fresh process: what a stalled consumer makes the buffer hold.
      const fresh = await launchBuffer();
      const idleRss = await rssOf(fresh.proc.child.pid!);
      const stalled = await throughBuffer(fresh, MiB, 1, { capacityBytes: capacity, stall: true });
      fresh.proc.stop();
      record("buffer RSS idle", "MB", [idleRss / 1e6]);
      record("buffer RSS, stalled consumer", "MB", [stalled.rss / 1e6]);
      record("buffer RSS growth, stalled", "MB", [(stalled.rss - idleRss) / 1e6]);
    }
    const buffer = await launchBuffer();
    /** A measure for `interleaved`: 600 held 1 MiB columnar batches drained by `reader` after 200. */
    const heldDrain = (reader: (args: DrainArgs) => Promise<any>) => () => drainHeld(buffer, MiB, 600, 200, reader, true);
    try {
      for (const size of [64 * KiB, MiB, 4 * MiB]) {
        const label = size >= MiB ? `${size / MiB}MiB` : `${size / KiB}KiB`;
        if (!only.test(label)) continue;
        // Each path in turn with its raw TLS baseline (interleaved), so a ratio compares them on the same machine.
        const [raw, hops] = await interleaved(
          () => rawHop(size),
          () => oneHop(buffer, size),
        );
        record(
          `raw TLS one hop ${label}`,
          "MB/s",
          raw.map((r) => r.mbps),
        );
        record(`buffer one hop ${label}`, "MB/s", hops);
        if (size === MiB) {
          // What receiving costs, raw and through the stack: the Subscribe one hop is bound by its consumer's CPU.
          record(
            `raw TLS one hop ${label}, receiver CPU`,
            "ms/MiB",
            raw.map((r) => r.cpuMsPerMiB),
          );
          const consumerRoles = [
            ["buffer subscribe one hop", "subscribe"],
            ["bare HTTP/2 subscribe one hop", "subscribe-bare"],
          ] as const;
          const drainBy = (consumerRole: string) => () => subscribeOneHop(buffer, size, 600, 200, consumerRole);
          const drains = await interleaved(...consumerRoles.map(([, consumerRole]) => drainBy(consumerRole)));
          for (const [j, [name]] of consumerRoles.entries()) {
            const runs = drains[j]!;
            record(
              `${name} ${label}`,
              "MB/s",
              runs.map((r) => r.mbps),
            );
            record(
              `${name} ${label}, consumer CPU`,
              "ms/MiB",
              runs.map((r) => r.cpuMsPerMiB),
            );
          }
        }
        const [rawRelays, relays] = await interleaved(
          () => rawRelayMeasured(size),
          () => throughBuffer(buffer, size, 1),
        );
        record(
          `raw TLS relay ${label}`,
          "MB/s",
          rawRelays.map((r) => r.mbps),
        );
        record(
          `buffer relay ${label}`,
          "MB/s",
          relays.map((r) => r.mbps),
        );
        record(
          `raw TLS relay ${label}, CPU of source, relay and sink`,
          "ms/MiB",
          rawRelays.map((r) => r.cpuMsPerMiB),
        );
        record(
          `buffer relay ${label}, CPU of producer, buffer and consumer`,
          "ms/MiB",
          relays.map((r) => r.cpuMsPerMiB),
        );
        // Each process beside its raw counterpart: where the relay's extra CPU goes at this size.
        for (const [path, proc, values] of [
          ["raw TLS relay", "source", rawRelays.map((r) => r.sourceCpu!)],
          ["raw TLS relay", "relay process", rawRelays.map((r) => r.relayCpu!)],
          ["raw TLS relay", "sink", rawRelays.map((r) => r.sinkCpu!)],
          ["buffer relay", "producer", relays.map((r) => r.producerCpu!)],
          ["buffer relay", "buffer", relays.map((r) => r.bufferCpu!)],
          ["buffer relay", "consumer", relays.map((r) => r.consumerCpu!)],
        ] as const) {
          record(`${path} ${label}, ${proc} CPU`, "ms/MiB", values);
        }
        if (size !== MiB) continue;
        // The floor under that: what encrypting and decrypting at both hops, and the kernel's four socket copies, cost at least.
        const limits = await repeat(async () => role("floor", {}).next());
        if (limits.some((l) => l.aesBy !== "native"))
          console.log("AES-GCM floor: timed with node:crypto, whose allocations inflate it; build the native helper (npm run build:native)");
        record(
          "AES-GCM, one pass, in-process",
          "ms/MiB",
          limits.map((l) => l.aesMsPerMiB),
        );
        record(
          "memory copy, in-process",
          "ms/MiB",
          limits.map((l) => l.copyMsPerMiB),
        );
        if (!hasPyzmq()) {
          console.log("pyzmq baselines: skipped, python3 has no pyzmq (scripts/install-system-deps.sh installs it)");
          continue;
        }
        const seed = [] as { hop: Awaited<ReturnType<typeof seedHop>>; relay: number }[];
        for (let i = 0; i < reps; i++) seed.push({ hop: await seedHop(size), relay: await seedRelay(size) });
        record(
          `pyzmq one hop ${label} (plain TCP)`,
          "MB/s",
          seed.map((r) => r.hop.mbps),
        );
        record(
          `pyzmq one hop ${label} (plain TCP), receiver CPU`,
          "ms/MiB",
          seed.map((r) => r.hop.cpuMsPerMiB),
        );
        record(
          `pyzmq relay ${label} (plain TCP)`,
          "MB/s",
          seed.map((r) => r.relay),
        );
      }
      if (only.test("python") && !existsSync(torchPython)) {
        console.log("Python drain: skipped, the Python client's environment is missing (scripts/install-system-deps.sh makes .tools/torch)");
      } else if (only.test("python")) {
        // 1 MiB columnar batches held, drained by each reader in turn (interleaved: each sees the same machine).
        const readers: [string, (args: DrainArgs) => Promise<any>][] = [
          ["bare grpcio drain 1MiB", pythonReader("grpcio")],
          ["Python client drain 1MiB", pythonReader("client")],
          ["torch DataLoader 2 workers drain 1MiB", pythonReader("torch")],
          ["bare HTTP/2 (Node) drain 1MiB", (args) => role("subscribe-bare", args).next()],
        ];
        const runs = await interleaved(...readers.map(([, read]) => heldDrain(read)));
        // Handing from workers to the loop with no network: torch's own way, and StreamLoader's rings (with the
        // grpcio reader, the rings' cost bounds the DataLoader).
        const handing = { chunkBytes: MiB, count: 2000, warmupCount: 200 } as DrainArgs;
        const [alone, ring] = await interleaved(
          () => pythonReader("torch-alone")(handing),
          () => pythonReader("ring-alone")(handing),
        );
        for (const [label, runs] of [
          ["torch DataLoader 2 workers alone (no network) 1MiB", alone],
          ["StreamLoader rings 2 workers alone (no network) 1MiB", ring],
        ] as const) {
          record(
            label,
            "MB/s",
            runs.map((r) => mbps(r)),
          );
          record(
            `${label}, CPU of all its processes`,
            "ms/MiB",
            runs.map((r) => r.allCpuMsPerMiB),
          );
        }
        for (const [j, [name]] of readers.entries()) {
          record(
            name,
            "MB/s",
            runs[j]!.map((r) => r.mbps),
          );
          // The torch path's work is in its workers as well as its loop.
          record(
            `${name}, reader CPU${name.startsWith("torch") ? " (loop and workers)" : ""}`,
            "ms/MiB",
            runs[j]!.map((r) => r.allCpuMsPerMiB ?? r.cpuMsPerMiB),
          );
          if (name !== "bare HTTP/2 (Node) drain 1MiB")
            record(
              `${name}, buffer CPU`,
              "ms/MiB",
              runs[j]!.map((r) => r.bufferCpuMsPerMiB),
            );
        }
      }
      if (only.test("consumers")) {
        // 1 MiB columnar batches held, drained by each client in turn (interleaved), against a bare HTTP/2 reader.
        const goDrain = buildGoDrain(dir);
        const readers: [string, (args: DrainArgs) => Promise<any>][] = [
          ["bare HTTP/2 (Node) drain 1MiB, consumers", (args) => role("subscribe-bare", args).next()],
          ["bare HTTP/2 (Node) drain 1MiB, each message gathered", (args) => role("subscribe-bare", { ...args, assemble: true }).next()],
          ["TS consumer drain 1MiB", (args) => role("subscribe", args).next()],
          ...(goDrain ? [["Go client drain 1MiB", goReader(goDrain, join(dir, "user"))] as [string, (args: DrainArgs) => Promise<any>]] : []),
        ];
        const runs = await interleaved(...readers.map(([, read]) => heldDrain(read)));
        for (const [j, [name]] of readers.entries()) {
          record(
            name,
            "MB/s",
            runs[j]!.map((r) => r.mbps),
          );
          record(
            `${name}, reader CPU`,
            "ms/MiB",
            runs[j]!.map((r) => r.cpuMsPerMiB),
          );
          // The buffer's sending to each reader (the bare reader neither decodes nor acknowledges).
          record(
            `${name}, buffer CPU`,
            "ms/MiB",
            runs[j]!.map((r) => r.bufferCpuMsPerMiB),
          );
        }
      }
      if (only.test("shards")) {
        // Interleaved, so every shard count sees the same machine.
        const counts = [1, 2, 4];
        const runs = await interleaved(...counts.map((n) => () => shardedRelay(n)));
        for (const [j, n] of counts.entries()) {
          const label = `${n} shard${n > 1 ? "s" : ""}`;
          record(
            `sharded relay 1MiB, ${label}, aggregate`,
            "MB/s",
            runs[j]!.map((r) => r.mbps),
          );
          for (const part of ["buffer", "producer", "consumer", "total"] as const)
            record(
              `sharded relay 1MiB, ${label}, ${part} CPU`,
              "ms/MiB",
              runs[j]!.map((r) => r[part]),
            );
        }
      }
      if (only.test("fan-out")) {
        // What this machine can do at all, interleaved with the groups: raw TLS copied to four sinks, against the one-sink relay.
        type Measured = { mbps: number; cpu?: Record<string, number> };
        const groups = async (n: number): Promise<Measured> => {
          const r = await throughBuffer(buffer, MiB, n);
          return { mbps: r.mbps, cpu: { producer: r.producerCpu, buffer: r.bufferCpu, consumers: r.consumerCpu } };
        };
        const sinks = async (n: number): Promise<Measured> => {
          const r = await rawRelayMeasured(MiB, n);
          return { mbps: r.mbps, cpu: n > 1 ? { source: r.sourceCpu, "relay process": r.relayCpu, sinks: r.sinkCpu } : undefined };
        };
        const paths: [string, () => Promise<Measured>][] = [
          ["buffer fan-out 2 groups 1MiB", () => groups(2)],
          ["buffer fan-out 4 groups 1MiB", () => groups(4)],
          ["raw TLS fan-out 4 sinks 1MiB", () => sinks(4)],
          ...(results["raw TLS relay 1MiB"] ? [] : [["raw TLS relay 1MiB", () => sinks(1)] as [string, () => Promise<Measured>]]),
        ];
        const runs = await interleaved(...paths.map(([, measure]) => measure));
        for (const [j, [name]] of paths.entries()) {
          record(
            name,
            "MB/s",
            runs[j]!.map((r) => r.mbps),
          );
          // Per MiB of the aggregate: where fanning out costs more than raw TLS's copying.
          for (const proc of Object.keys(runs[j]![0]!.cpu ?? {}))
            record(
              `${name}, ${proc} CPU`,
              "ms/MiB",
              runs[j]!.map((r) => r.cpu![proc]!),
            );
        }
      }
      if (only.test("contention")) {
        // One busy loop per core beside the path and its baseline, as on a facility node that is never idle.
        const busy = cpus().map(() => tracked(spawn(process.execPath, ["-e", "for (;;);"], { stdio: "ignore" })));
        try {
          for (const size of [64 * KiB, MiB]) {
            const label = size >= MiB ? "1MiB" : "64KiB";
            const [raws, relays] = await interleaved(
              () => rawRelay(size),
              async () => (await throughBuffer(buffer, size, 1)).mbps,
            );
            record(`raw TLS relay ${label}, contended`, "MB/s", raws);
            record(`buffer relay ${label}, contended`, "MB/s", relays);
          }
          const latencies = (await throughBuffer(buffer, 64 * KiB, 1, { rate: 200 })).latencies;
          record("latency p50 64KiB at 200/s, contended", "ms", [percentile(latencies, 50)]);
          record("latency p99 64KiB at 200/s, contended", "ms", [percentile(latencies, 99)]);
        } finally {
          for (const b of busy) b.kill();
        }
      }
      if (only.test("producer")) {
        // Interleaved, so that both see the same machine.
        const kinds = [
          ["producer rank publishing, random 1MiB events", "rank", false],
          ["publish role publishing, pre-encoded 1MiB batches", "role", false],
          ["live request, one producer rank, random 1MiB events, delivered", "rank", true],
        ] as const;
        const runs = await interleaved(
          ...kinds.map(
            ([, publisher, consumer]) =>
              () =>
                publishing(buffer, publisher, consumer),
          ),
        );
        for (const [j, [name, publisher]] of kinds.entries()) {
          record(
            name,
            "MB/s",
            runs[j]!.map((r) => r.mbps),
          );
          record(
            `${name}, ${publisher === "rank" ? "rank" : "publish role"} CPU`,
            "ms/MiB",
            runs[j]!.map((r) => r.publisherCpu),
          );
          record(
            `${name}, buffer CPU`,
            "ms/MiB",
            runs[j]!.map((r) => r.bufferCpu),
          );
        }
      }
      if (only.test("latency")) {
        const latencies = (await throughBuffer(buffer, 64 * KiB, 1, { rate: 200 })).latencies;
        record("latency p50 64KiB at 200/s", "ms", [percentile(latencies, 50)]);
        record("latency p99 64KiB at 200/s", "ms", [percentile(latencies, 99)]);
      }
    } finally {
      buffer.proc.stop();
    }
    if (only.test("mesh")) await onTheMesh(join(dir, "mesh"), record);
    if (only.test("shards")) await shardControlPath(join(dir, "shard-control"), record);
    if (only.test("slurm")) {
      if (existsSync("/usr/sbin/slurmctld")) await setupOnSlurm(join(dir, "slurm"), record);
      else console.log("setup on Slurm: skipped, Slurm is not installed (scripts/install-system-deps.sh installs it)");
    }
    if (only.test("psana")) {
      if (spawnSync(psanaPython(), ["-c", "import psana"]).status === 0) await psanaRun(join(dir, "psana"), record);
      else console.log("psana XTC2 run: skipped, psana is not installed (scripts/install-system-deps.sh installs it)");
    }
    if (only.test("front")) {
      if (haproxyBinary()) await throughTheFront(join(dir, "front"), record);
      else console.log("through the front proxy: skipped, haproxy is not installed (scripts/install-system-deps.sh installs it)");
    }
    if (only.test("viewer")) {
      if (hasChromium()) await viewerFrameRate(join(dir, "viewer"), record);
      else console.log("the viewer in a browser: skipped, chromium is not installed (scripts/install-system-deps.sh installs it)");
    }
  } finally {
    await new Promise((r) => setTimeout(r, 500));
    rmSync(dir, { recursive: true, force: true });
  }

  if (Object.keys(results).length === 0) {
    console.error(`BENCH_ONLY=${only.source} matched no scenario (${scenarios}); nothing written`);
    process.exit(2);
  }
  const m = (name: string) => results[name]!.median;
  const least = (name: string) => Math.min(...results[name]!.values);
  const bound = (capacity + 64 * MiB) / 1e6;
  const has = (...names: string[]) => names.every((n) => results[n]);
  // The floor of the relay's CPU: 4 AES-GCM passes and `copies` copies a MiB, each at the least it was seen at (a busy machine only adds).
  const aes = "AES-GCM, one pass, in-process";
  const copy = "memory copy, in-process";
  const relayCpu = "buffer relay 1MiB, CPU of producer, buffer and consumer";
  const floorMsPerMiB = (copies = 4) => 4 * least(aes) + copies * least(copy);
  const ratio = (a: string, b: string) => () => m(a) / m(b);
  // Each target: its name, the results it is computed from, its value, and its bound.
  const wanted: [string, string[], () => number, Target["op"], number][] = [
    ["one hop 1MiB vs raw TLS", ["buffer one hop 1MiB", "raw TLS one hop 1MiB"], ratio("buffer one hop 1MiB", "raw TLS one hop 1MiB"), ">=", 0.7],
    [
      "subscribe one hop 1MiB vs raw TLS",
      ["buffer subscribe one hop 1MiB", "raw TLS one hop 1MiB"],
      ratio("buffer subscribe one hop 1MiB", "raw TLS one hop 1MiB"),
      ">=",
      0.7,
    ],
    ["relay 1MiB vs raw TLS relay", ["buffer relay 1MiB", "raw TLS relay 1MiB"], ratio("buffer relay 1MiB", "raw TLS relay 1MiB"), ">=", 0.5],
    [
      "relay 1MiB (mTLS) vs pyzmq relay (plain TCP)",
      ["buffer relay 1MiB", "pyzmq relay 1MiB (plain TCP)"],
      ratio("buffer relay 1MiB", "pyzmq relay 1MiB (plain TCP)"),
      ">=",
      1,
    ],
    ["relay CPU per MiB vs 4 AES-GCM passes + 4 copies", [relayCpu, aes, copy], () => m(relayCpu) / floorMsPerMiB(), "<", 2],
    // What the buffer controls of fan-out: against raw TLS copied to four sinks in the same run (4 groups vs 1,
    // which two cores cannot double, is reported beside it for larger machines).
    [
      "4 groups vs raw TLS fan-out to 4 sinks",
      ["buffer fan-out 4 groups 1MiB", "raw TLS fan-out 4 sinks 1MiB"],
      ratio("buffer fan-out 4 groups 1MiB", "raw TLS fan-out 4 sinks 1MiB"),
      ">=",
      0.9,
    ],
    ["relay 64KiB vs raw TLS relay", ["buffer relay 64KiB", "raw TLS relay 64KiB"], ratio("buffer relay 64KiB", "raw TLS relay 64KiB"), ">=", 0.8],
    ["setup to first batch, local (s)", ["setup, request to first batch"], () => m("setup, request to first batch"), "<", 2],
    ["setup to first batch, Slurm (s)", ["setup on Slurm, request to first batch"], () => m("setup on Slurm, request to first batch"), "<", 5],
    [
      "psana producer publishing vs bare psana loop",
      ["psana producer rank reading and publishing to the buffer, 4 MiB frames", "psana bare loop, 4 MiB frames"],
      ratio("psana producer rank reading and publishing to the buffer, 4 MiB frames", "psana bare loop, 4 MiB frames"),
      ">=",
      0.8,
    ],
    [
      "Python client drain vs bare grpcio reader",
      ["Python client drain 1MiB", "bare grpcio drain 1MiB"],
      ratio("Python client drain 1MiB", "bare grpcio drain 1MiB"),
      ">=",
      0.9,
    ],
    [
      "torch DataLoader, 2 workers, vs bare grpcio reader",
      ["torch DataLoader 2 workers drain 1MiB", "bare grpcio drain 1MiB"],
      ratio("torch DataLoader 2 workers drain 1MiB", "bare grpcio drain 1MiB"),
      ">=",
      0.7,
    ],
    ...["TS consumer", "Go client"].map((client): (typeof wanted)[number] => [
      `${client} drain vs bare HTTP/2 reader`,
      [`${client} drain 1MiB`, "bare HTTP/2 (Node) drain 1MiB, consumers"],
      ratio(`${client} drain 1MiB`, "bare HTTP/2 (Node) drain 1MiB, consumers"),
      ">=",
      0.9,
    ]),
    [
      "CPU per MiB, 4 shards vs 1",
      ["sharded relay 1MiB, 4 shards, total CPU", "sharded relay 1MiB, 1 shard, total CPU"],
      ratio("sharded relay 1MiB, 4 shards, total CPU", "sharded relay 1MiB, 1 shard, total CPU"),
      "<",
      1.15,
    ],
    ...viewerLayouts.map(([layout]): (typeof wanted)[number] => [
      `viewer frames drawn a second, ${layout}`,
      [`viewer frames drawn a second, ${layout}`],
      () => m(`viewer frames drawn a second, ${layout}`),
      ">=",
      5,
    ]),
    ["p50 latency 64KiB (ms)", ["latency p50 64KiB at 200/s"], () => m("latency p50 64KiB at 200/s"), "<", 2],
    [
      "producer rank vs pre-encoded publish role",
      ["producer rank publishing, random 1MiB events", "publish role publishing, pre-encoded 1MiB batches"],
      ratio("producer rank publishing, random 1MiB events", "publish role publishing, pre-encoded 1MiB batches"),
      ">=",
      0.8,
    ],
    [
      "live request, one rank, vs relay 1MiB",
      ["live request, one producer rank, random 1MiB events, delivered", "buffer relay 1MiB"],
      ratio("live request, one producer rank, random 1MiB events, delivered", "buffer relay 1MiB"),
      ">=",
      0.8,
    ],
    ...["64KiB", "1MiB"].map((label): (typeof wanted)[number] => [
      `relay ${label} vs raw TLS relay, both contended`,
      [`buffer relay ${label}, contended`, `raw TLS relay ${label}, contended`],
      ratio(`buffer relay ${label}, contended`, `raw TLS relay ${label}, contended`),
      ">=",
      0.8,
    ]),
    ["p50 latency 64KiB, contended (ms)", ["latency p50 64KiB at 200/s, contended"], () => m("latency p50 64KiB at 200/s, contended"), "<", 5],
    // What the stream makes the buffer hold, over the idle process (V8 and code are not the buffer's memory).
    ["RSS growth vs capacity + 64 MiB", ["buffer RSS growth, stalled"], () => m("buffer RSS growth, stalled") / bound, "<", 1],
  ];
  const targets = wanted.filter(([, from]) => has(...from)).map(([name, , value, op, limit]) => target(name, value(), op, limit));
  // A run of some scenarios (BENCH_ONLY) says which targets it did not measure, so `bench:check` does not pass it as a whole.
  const unmeasured = wanted.filter(([, from]) => !has(...from)).map(([name]) => name);
  console.log("\nratios against this run's baselines:");
  for (const t of targets) console.log(`  ${t.name.padEnd(46)} ${t.value.toFixed(2).padStart(6)}  (target ${t.op} ${t.limit}) ${t.met ? "ok" : "NOT MET"}`);
  // Not a target: the fan-out ratio raw TLS itself reaches here, where every process shares the same cores.
  const ceiling = has("raw TLS fan-out 4 sinks 1MiB", "raw TLS relay 1MiB") ? m("raw TLS fan-out 4 sinks 1MiB") / m("raw TLS relay 1MiB") : undefined;
  // Not a target here either: 4 groups against one, the 2x a machine with cores to spare should reach.
  const fanOutVsOneGroup = has("buffer fan-out 4 groups 1MiB", "buffer relay 1MiB") ? m("buffer fan-out 4 groups 1MiB") / m("buffer relay 1MiB") : undefined;
  if (fanOutVsOneGroup !== undefined) console.log(`  ${"4 groups vs 1 group (2x on larger machines)".padEnd(46)} ${fanOutVsOneGroup.toFixed(2).padStart(6)}`);
  if (ceiling !== undefined) console.log(`  ${"raw TLS: 4 sinks vs 1 (the ceiling)".padEnd(46)} ${ceiling.toFixed(2).padStart(6)}`);
  // Not a target either: the DataLoader ratio two cores allow. Its path does the grpcio reader's work, the buffer's
  // sending and the rings' handing from workers to the loop (measured alone, with no network): at best their CPU
  // per MiB adds up, and two cores give 2000 ms a second.
  const grpcio = "bare grpcio drain 1MiB";
  const aloneCpu = "StreamLoader rings 2 workers alone (no network) 1MiB, CPU of all its processes";
  const loaderCeiling = has(aloneCpu, grpcio, `${grpcio}, reader CPU`, `${grpcio}, buffer CPU`)
    ? 2000 / (m(`${grpcio}, reader CPU`) + m(`${grpcio}, buffer CPU`) + m(aloneCpu)) / (m(grpcio) / 1.048576)
    : undefined;
  if (loaderCeiling !== undefined) console.log(`  ${"DataLoader vs grpcio reader: the ceiling".padEnd(46)} ${loaderCeiling.toFixed(2).padStart(6)}`);
  // And the psana ratio two cores allow: psana's own CPU per MiB plus what raw TLS one hop costs with both cores
  // busy (no gRPC, pipe or buffer at all), against the bare loop.
  const bare = "psana bare loop, 4 MiB frames";
  const psanaCeiling = has(bare, `${bare}, CPU`, "raw TLS one hop 1MiB")
    ? 2000 / (m(`${bare}, CPU`) + 2000 / (m("raw TLS one hop 1MiB") / 1.048576)) / (m(bare) / 1.048576)
    : undefined;
  if (psanaCeiling !== undefined) console.log(`  ${"psana producer vs bare loop: the ceiling".padEnd(46)} ${psanaCeiling.toFixed(2).padStart(6)}`);
  // Not a target: what any relay with TLS on both hops could carry against pyzmq's plaintext relay if encrypting,
  // decrypting and the kernel's copies were all its processes did (the floor above), with all of two cores.
  const pyzmqRelay = "pyzmq relay 1MiB (plain TCP)";
  const tlsRelayCeiling = has(aes, copy, pyzmqRelay) ? 2000 / floorMsPerMiB() / (m(pyzmqRelay) / 1.048576) : undefined;
  if (tlsRelayCeiling !== undefined) console.log(`  ${"any TLS relay vs pyzmq relay: the ceiling".padEnd(46)} ${tlsRelayCeiling.toFixed(2).padStart(6)}`);
  // Not a target: raw Node TLS's own relay against the same floor as the relay's CPU target.
  const rawRelayCpu = "raw TLS relay 1MiB, CPU of source, relay and sink";
  const rawRelayVsFloor = has(rawRelayCpu, aes, copy) ? m(rawRelayCpu) / floorMsPerMiB() : undefined;
  if (rawRelayVsFloor !== undefined) console.log(`  ${"raw TLS relay CPU per MiB vs the floor".padEnd(46)} ${rawRelayVsFloor.toFixed(2).padStart(6)}`);
  // Not a target: the relay against what TLS in user space must do. Through OpenSSL a hop copies a batch four times
  // (into OpenSSL's record, into the kernel, out of it, out of OpenSSL's record): a relay's eight where the floor counts four.
  const relayVsUserSpaceTls = has(relayCpu, aes, copy) ? m(relayCpu) / floorMsPerMiB(8) : undefined;
  if (relayVsUserSpaceTls !== undefined)
    console.log(`  ${"relay CPU per MiB vs 4 AES-GCM + 8 copies".padEnd(46)} ${relayVsUserSpaceTls.toFixed(2).padStart(6)}`);
  // Not a target: the TS consumer against a bare reader that also gathers each message into one buffer, the copy
  // every gRPC client makes to hand a message over (the bare reader of the target makes none).
  const gathered = "bare HTTP/2 (Node) drain 1MiB, each message gathered";
  const consumerVsGathered = has("TS consumer drain 1MiB", gathered) ? m("TS consumer drain 1MiB") / m(gathered) : undefined;
  if (consumerVsGathered !== undefined) console.log(`  ${"TS consumer vs a reader that gathers".padEnd(46)} ${consumerVsGathered.toFixed(2).padStart(6)}`);
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ machine, reps, measureMs, only: only.source, results, targets, unmeasured, fanOutCeiling: ceiling, fanOutVsOneGroup, loaderCeiling, psanaCeiling, tlsRelayCeiling, rawRelayVsFloor, relayVsUserSpaceTls, consumerVsGathered }, null, 2)}\n`,
  );
  console.log(`\nwritten to ${file}`);
  if (!unmeasured.length) console.log(`bench/README.md now shows ${updateBenchReadme(benchSourceDir)}`);
}

/** What a reader of held batches is given. */
interface DrainArgs {
  tls: { caPem: string; certPem: string; keyPem: string };
  url: string;
  stream: string;
  group: string;
  count: number;
  chunkBytes?: number;
  warmupCount: number;
}

/** The Python client's environment (scripts/install-system-deps.sh), with torch. */
const torchPython = fileURLToPath(new URL("../../.tools/torch/bin/python", import.meta.url));
const pythonDrainScript = fileURLToPath(new URL("../../bench/python_drain.py", import.meta.url));
const pythonClientSrc = fileURLToPath(new URL("../../clients/python/src", import.meta.url));

/** A Python consumer of held batches (bench/python_drain.py, in the client's environment), reading as `mode` says. */
function pythonReader(mode: "grpcio" | "client" | "torch" | "torch-alone" | "ring-alone") {
  return ({ tls, ...rest }: DrainArgs) =>
    lastJsonLine(`python_drain.py ${mode}`, torchPython, [pythonDrainScript, mode, JSON.stringify({ ...rest, ...tls })], {
      ...process.env,
      PYTHONPATH: pythonClientSrc,
    });
}

/** Runs a reader to its end; resolves with the JSON of the last line it printed. */
function lastJsonLine(what: string, command: string, argv: string[], env?: NodeJS.ProcessEnv): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = tracked(spawn(command, argv, { stdio: ["ignore", "pipe", "inherit"], env }));
    let out = "";
    child.stdout!.on("data", (chunk) => (out += chunk));
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!)) : reject(new Error(`${what} exited with ${code}`))));
  });
}

/** The Go client's drain command (clients/go/cmd/lclstream-drain), built into `dir`; undefined, saying why, without Go. */
function buildGoDrain(dir: string): string | undefined {
  const out = join(dir, "lclstream-drain");
  const built = spawnSync("go", ["build", "-o", out, "./cmd/lclstream-drain"], {
    cwd: fileURLToPath(new URL("../../clients/go", import.meta.url)),
    encoding: "utf8",
  });
  if (built.status === 0) return out;
  console.log(`Go client drain: skipped, it did not build (${built.error?.message ?? built.stderr.trim().split("\n").at(-1)})`);
  return undefined;
}

/** A reader of held batches with the Go client's consumer. */
function goReader(binary: string, certDir: string) {
  return (a: DrainArgs) =>
    lastJsonLine("lclstream-drain", binary, [
      "-url",
      a.url,
      "-cert-dir",
      certDir,
      "-stream",
      a.stream,
      "-group",
      a.group,
      "-count",
      String(a.count),
      "-warmup",
      String(a.warmupCount),
    ]);
}

/**
 * The whole mesh, as `lclstream up` runs it (one process, producers as jobs):
 * how long a request takes to deliver its first batch, and a full request from
 * the synthetic crystallography source with peak finding, end to end.
 */
async function onTheMesh(stateDir: string, record: (name: string, unit: string, values: number[]) => void) {
  const up = start(cliJs, ["up", "--state-dir", stateDir]);
  try {
    const endpointsFile = join(stateDir, "endpoints.json");
    for (let i = 0; i < 600 && !existsSync(endpointsFile); i++) await new Promise((r) => setTimeout(r, 100));
    const endpoints = JSON.parse(readFileSync(endpointsFile, "utf8")) as { request: string; certDir: string };
    const tls = await readCertDir(endpoints.certDir);
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: endpoints.request, tls }));
    record("setup, request to first batch", "s", await setupTimes(endpoints));
    const crystallography = {
      parallelism: 2,
      producer: syntheticRequest(80, { jungfrau4M: { type: "SyntheticAreaDetector", geometry: "jungfrau4M", peaks: { min: 0, max: 40 } } }, 2, [
        { type: "PeakFinder", data_source: "jungfrau4M" },
      ]),
    };
    const { dataRequest } = await requests.createDataRequest({ dataRequest: crystallography as never });
    const { progress } = await fetchRequest({
      requests,
      transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }),
      name: dataRequest!.name,
      signal: new AbortController().signal,
    });
    record("end to end events/s, Jungfrau 4M + peaks", "events/s", [progress.events / progress.seconds]);
    record("end to end MB/s, Jungfrau 4M + peaks", "MB/s", [progress.bytesPerSecond / 1e6]);
  } finally {
    up.stop();
  }
}

/**
 * The control path of sharding, with empty payloads (one small event per
 * rank, 32 ranks), on a mesh with a pool of 4 buffers: how long placement
 * takes (CreateDataRequest until every shard has its stream) and how long a
 * consumer takes to drain the finished stream (subscriptions, merge, end of
 * stream, totals), with 32 shards against 1. The difference over 31 is what a
 * shard adds.
 */
async function shardControlPath(stateDir: string, record: (name: string, unit: string, values: number[]) => void) {
  const mesh = await startLocalMesh({ stateDir, logLevel: "error", buffers: 4 });
  try {
    const tls = await readCertDir(mesh.endpoints.certDir);
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
    const placement: Record<number, number[]> = { 1: [], 32: [] };
    const drain: Record<number, number[]> = { 1: [], 32: [] };
    for (let i = 0; i < reps; i++) {
      for (const shards of [1, 32]) {
        const producer = syntheticRequest(32, { n: { type: "SyntheticScalar" } }, 1);
        const started = performance.now();
        const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer, parallelism: 32, shardCount: shards } as never });
        const name = dataRequest!.name;
        for (;;) {
          const { dataRequest: r } = await requests.getDataRequest({ name });
          if (r!.shards.length === shards && r!.shards.every((s) => s.stream)) break;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        placement[shards]!.push(performance.now() - started);
        // The producers done first: what follows is the consumer's part alone.
        for (;;) {
          const { dataRequest: r } = await requests.getDataRequest({ name });
          const jobs = r!.metrics?.jobs ?? [];
          if (jobs.length && jobs.every((j) => j.state === "COMPLETED")) break;
          if (r!.metrics?.jobs.some((j) => j.state === "FAILED")) throw new Error(`${name}'s producers failed: ${r!.stateReason}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const drained = performance.now();
        await fetchRequest({ requests, transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }), name, signal: new AbortController().signal });
        drain[shards]!.push(performance.now() - drained);
      }
    }
    record("placement, 1 shard", "ms", placement[1]!);
    record("placement, 32 shards", "ms", placement[32]!);
    record("drain of 32 empty batches, 1 shard", "ms", drain[1]!);
    record("drain of 32 empty batches, 32 shards", "ms", drain[32]!);
  } finally {
    await mesh.close();
  }
}

/** A producer config (lclstreamer's layout) of lclstream's synthetic detectors. */
function syntheticRequest(events: number, dataSources: object, batchSize: number, steps: object[] = []) {
  return {
    source_identifier: "synthetic:bench:run=1",
    skip_incomplete_events: false,
    event_source: { type: "InternalEventSource", number_of_events_to_generate: events, seed: 1 },
    data_sources: dataSources,
    processing_pipeline: { type: "BatchProcessingPipeline", batch_size: batchSize, steps },
    data_serializer: { type: "NativeBinarySerializer" },
    data_handlers: [],
  };
}

/**
 * A bare psana loop over the same run and field: every event's frames read
 * into memory of their own (what any consumer of them does; without the copy
 * psana hands out views of its buffers, at several GB/s), timed from the
 * first event to the last. Prints its MB/s and the CPU it spent per MiB.
 */
const barePsanaLoop = `
import sys, time
import numpy as np
from psana import DataSource
run = next(DataSource(files=sys.argv[1], skip_calib_load="all").runs())
det = run.Detector("jungfrau")
nbytes, started = 0, None
for evt in run.events():
    if started is None:
        started, cpu = time.perf_counter(), time.process_time()
    nbytes += np.array(det.raw.raw(evt), dtype=np.uint16).nbytes
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(nbytes / 1e6 / seconds, cpu * 1000 / (nbytes / 2**20))
`;

/** The rate a producer job reports for its rank when it ends: the last JSON line of its log with `done`. */
async function producerRate(jobs: Client<typeof JobQueueService>, job: string): Promise<number> {
  let log = "";
  for await (const chunk of jobs.streamJobLogs({ name: job, log: LogStream.STDOUT })) log += Buffer.from(chunk.data).toString("utf8");
  const done = log
    .split("\n")
    .filter((line) => line.startsWith("{") && line.includes('"done":true'))
    .map((line) => JSON.parse(line) as { mb_per_second: number })
    .at(-1);
  if (!done) throw new Error(`${job} reported no totals; its log ends: ${log.slice(-400)}`);
  return done.mb_per_second;
}

/**
 * An XTC2 run of 4 MiB Jungfrau frames (4 x 512 x 1024, written with psana's
 * dgramCreate) read by the real psana: by a bare loop, and by one producer
 * rank of a data request on the whole mesh, reading it and publishing to the
 * buffer (its own rate, from its first event to the buffer's confirmation of
 * its last batch; the request's consumer starts once the rank is done, so
 * the two do not share the CPU), then drained by `lclstream get`'s consumer.
 */
async function psanaRun(dir: string, record: (name: string, unit: string, values: number[]) => void) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "xpptut15-r0001-s000-c000.xtc2");
  const writer = fileURLToPath(new URL("../../test/helpers/xtc2_frames.py", import.meta.url));
  const made = spawnSync(psanaPython(), [writer, file, "--events", "200", "--shape", "4,512,1024"], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`could not write the XTC2 run: ${made.stderr}`);
  const bare: number[] = [];
  const bareCpu: number[] = [];
  const produced: number[] = [];
  const drained: number[] = [];
  const mesh = await startLocalMesh({ stateDir: dir, logLevel: "error", bufferProcess: true });
  try {
    const tls = await readCertDir(mesh.endpoints.certDir);
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
    const jobs = createClient(JobQueueService, createMeshTransport({ baseUrl: mesh.endpoints.jobs, tls }));
    const producer = psanaFramesConfig(file);
    // Interleaved, so both see the same machine.
    for (let i = 0; i < reps; i++) {
      const [mbps, cpuPerMiB] = spawnSync(psanaPython(), ["-c", barePsanaLoop, file], { encoding: "utf8" }).stdout.trim().split(" ").map(Number);
      bare.push(mbps!);
      bareCpu.push(cpuPerMiB!);
      // The buffer holds the whole run (839 MB), so the rank never waits on a consumer.
      const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer, bufferCapacityBytes: 2n ** 30n } as never });
      const name = dataRequest!.name;
      // The job once submitted, then its transitions as they come: polling the request while the rank runs took
      // a fifth of a core from the two it shares (each poll asks the buffer and the job queue over mTLS).
      let job: string | undefined;
      while (!job) {
        const { dataRequest: r } = await requests.getDataRequest({ name });
        job = r!.metrics?.jobs[0]?.job;
        if (!job) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      let state = Job_State.UNSPECIFIED;
      for await (const { transition } of jobs.watchJob({ name: job })) state = transition!.state;
      if (state !== Job_State.COMPLETED) throw new Error(`the psana producer job ${job} ended ${Job_State[state]}`);
      produced.push(await producerRate(jobs, job));
      const { progress } = await fetchRequest({
        requests,
        transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }),
        name,
        signal: new AbortController().signal,
      });
      drained.push(progress.bytesPerSecond / 1e6);
    }
  } finally {
    await mesh.close();
  }
  record("psana bare loop, 4 MiB frames", "MB/s", bare);
  record("psana bare loop, 4 MiB frames, CPU", "ms/MiB", bareCpu);
  record("psana producer rank reading and publishing to the buffer, 4 MiB frames", "MB/s", produced);
  record("psana run drained from the buffer by lclstream get, 4 MiB frames", "MB/s", drained);
}

/** The viewer's two ways of laying out a Jungfrau 4M frame: its own module layout, and psana's geometry file for raw frames. */
const viewerLayouts: [layout: string, geometry: JsonValue, geometryFile?: string][] = [
  ["Jungfrau 4M, module layout", "jungfrau4M"],
  ["Jungfrau 4M raw, psana geometry", { shape: [8, 512, 1024], dtype: "uint16" }, "geometry-def-jungfrau4M.data"],
];
const hasChromium = () => {
  try {
    return Boolean(debianTool("chromium"));
  } catch {
    return false;
  }
};

/**
 * The live viewer in headless chromium, reading a latest-only group of Jungfrau 4M
 * frames sent at 20 a second: frames drawn a second (the issue's bound is 5),
 * frames arrived, and what one draw costs, each layout in turn in every repetition.
 */
async function viewerFrameRate(dir: string, record: (name: string, unit: string, values: number[]) => void) {
  const staticDir = fileURLToPath(new URL("../viewer", import.meta.url));
  const fixtures = fileURLToPath(new URL("../../test/fixtures/psana-geometry", import.meta.url));
  const mesh = await startLocalMesh({ stateDir: dir, logLevel: "error" });
  const browser = await chromium.launch({ executablePath: debianTool("chromium"), headless: true, args: ["--no-sandbox"] });
  const runs = viewerLayouts.map(() => ({ drawn: [] as number[], arrived: [] as number[], drawMs: [] as number[] }));
  try {
    const tls = await readCertDir(mesh.endpoints.certDir);
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
    for (let i = 0; i < reps; i++) {
      for (const [j, [, geometry, geometryFile]] of viewerLayouts.entries()) {
        const geometries = geometryFile ? [{ name: geometryFile, text: readFileSync(join(fixtures, geometryFile), "utf8") }] : [];
        const gateway = await startViewerGateway({ requestUrl: mesh.endpoints.request, tls, staticDir, geometries });
        const producer = internalConfig(
          100_000,
          { frame: { type: "SyntheticAreaDetector", geometry, peaks: { min: 5, max: 20 } } },
          { seed: 2, rateHz: 20, paced: true, batchSize: 1 },
        );
        const dataRequest = { parallelism: 1, consumerGroups: [{ name: "viewer", mode: DeliveryMode.LATEST_ONLY }], producer };
        const { dataRequest: created } = await requests.createDataRequest({ dataRequest: dataRequest as never });
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        try {
          await page.goto(gateway.url);
          await page.waitForFunction(() => Number(document.getElementById("frame")?.dataset.draws ?? 0) > 2, undefined, { timeout: 60_000 });
          const counts = async () => ({
            draws: Number(await page.getAttribute("#frame", "data-draws")),
            arrived: Number(await page.getAttribute("#frame", "data-arrived")),
          });
          const [before, t0] = [await counts(), performance.now()];
          const drawMs: number[] = [];
          while (performance.now() - t0 < Math.max(measureMs, 4000)) {
            drawMs.push(Number(await page.getAttribute("#frame", "data-draw-ms")));
            await new Promise((r) => setTimeout(r, 250));
          }
          const after = await counts();
          const seconds = (performance.now() - t0) / 1000;
          runs[j]!.drawn.push((after.draws - before.draws) / seconds);
          runs[j]!.arrived.push((after.arrived - before.arrived) / seconds);
          runs[j]!.drawMs.push(median(drawMs));
        } finally {
          await page.close();
          await requests.cancelDataRequest({ name: created!.name, reason: "benchmark over" });
          await gateway.close();
        }
      }
    }
  } finally {
    await browser.close();
    await mesh.close();
  }
  for (const [j, [layout]] of viewerLayouts.entries()) {
    record(`viewer frames drawn a second, ${layout}`, "frames/s", runs[j]!.drawn);
    record(`viewer frames arrived a second, ${layout}`, "frames/s", runs[j]!.arrived);
    record(`viewer draw time, ${layout}`, "ms", runs[j]!.drawMs);
  }
}

/** Setup time with the producers as Slurm jobs: a one-node cluster on loopback (scripts/slurm-cluster.sh). */
async function setupOnSlurm(dir: string, record: (name: string, unit: string, values: number[]) => void) {
  const cluster = fileURLToPath(new URL("../../scripts/slurm-cluster.sh", import.meta.url));
  const started = spawnSync(cluster, ["start", join(dir, "cluster")], { encoding: "utf8" });
  const slurmConf = /SLURM_CONF=(\S+)/.exec(started.stdout ?? "")?.[1];
  if (!slurmConf) {
    console.log(`setup on Slurm: skipped, the cluster did not start: ${started.stderr}`);
    return;
  }
  const mesh = await startLocalMesh({
    stateDir: join(dir, "state"),
    logLevel: "error",
    jobBackends: [{ type: "slurm", env: { SLURM_CONF: slurmConf }, pollMs: 200 }],
  });
  try {
    record("setup on Slurm, request to first batch", "s", await setupTimes(mesh.endpoints, "slurm"));
  } finally {
    await mesh.close();
    spawnSync(cluster, ["stop", join(dir, "cluster")]);
  }
}

/** Seconds from CreateDataRequest to the first batch at a consumer, for `reps` small requests (after two to warm up). */
async function setupTimes(endpoints: { request: string; certDir: string }, backend?: string): Promise<number[]> {
  const tls = await readCertDir(endpoints.certDir);
  const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: endpoints.request, tls }));
  const tiny = syntheticRequest(8, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 64 } }, 4);
  const setups: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const started = performance.now();
    let first = 0;
    const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer: tiny, backend } as never });
    await fetchRequest({
      requests,
      transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }),
      name: dataRequest!.name,
      signal: new AbortController().signal,
      onProgress: () => (first ||= performance.now()),
    });
    if (i >= 2) setups.push((first - started) / 1000);
  }
  return setups;
}

/**
 * The relay with the consumer behind the front door (HAProxy, mesh/haproxy.cfg),
 * against the same relay without it, on one local mesh in this process.
 */
async function throughTheFront(stateDir: string, record: (name: string, unit: string, values: number[]) => void) {
  const [frontPort, enrollPort] = [await freePort(), await freePort()];
  const mesh = await startLocalMesh({ stateDir, logLevel: "error", front: { url: `https://127.0.0.1:${frontPort}` } });
  let front: HaproxyFront | undefined;
  try {
    front = await startHaproxyFront({ mesh, stateDir, dir: stateDir, frontPort, enrollPort });
    const me = await readCertDir(mesh.endpoints.certDir);
    const buffer = createClient(BufferService, createMeshTransport({ baseUrl: mesh.endpoints.buffer, tls: me }));
    const relay = async (consumerUrl: string) => {
      const { stream, publishToken } = await buffer.createStream({
        stream: { capacityBytes: BigInt(256 * MiB), consumerGroups: [{ name: "g" }] },
      });
      const common = { tls: me, stream: stream!.name, chunkBytes: MiB };
      const consumer = role("subscribe", { ...common, url: consumerUrl, group: "g" });
      const producer = role("publish", { ...common, url: mesh.endpoints.buffer, token: publishToken });
      const r = await consumer.next();
      producer.stop();
      consumer.stop();
      await buffer.deleteStream({ name: stream!.name });
      return mbps(r);
    };
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < reps; i++) {
      direct.push(await relay(mesh.endpoints.buffer));
      proxied.push(await relay(front.url));
    }
    record("relay 1MiB, consumer direct", "MB/s", direct);
    record("relay 1MiB, consumer via HAProxy", "MB/s", proxied);
  } finally {
    await front?.close();
    await mesh.close();
  }
}

/** A benchmark target: a ratio or figure of this run and the bound it must meet (`npm run bench:check`). */
export interface Target {
  name: string;
  value: number;
  op: ">=" | "<";
  limit: number;
  met: boolean;
}

function target(name: string, value: number, op: Target["op"], limit: number): Target {
  return { name, value, op, limit, met: op === ">=" ? value >= limit : value < limit };
}

/** Clock ticks per second of /proc's CPU times. */
const clockTicks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

/** The CPU a process has used so far (user and system, all its threads), in ms. */
function cpuMsOf(pid: number): number {
  // The fields after the command name, which is in parentheses and may hold spaces.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

async function rssOf(pid: number): Promise<number> {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** The highest RSS of `pid` seen during `ms`. */
async function sampleRss(pid: number, ms: number): Promise<number> {
  let max = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    max = Math.max(max, await rssOf(pid));
    await new Promise((r) => setTimeout(r, 100));
  }
  return max;
}

await main();
// Whatever still runs (a baseline that did not stop when told) would keep the bench from ending: the exit handler stops it.
process.exit();
