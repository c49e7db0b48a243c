/**
 * Sharded requests on a mesh with a pool of 3 buffer processes: 4 producer
 * ranks over 3 shards read by a merged group and by an assigned group (its
 * consumers dividing the shards, one of them killed with SIGKILL); a durable
 * shard's buffer SIGKILLed mid-request, with nothing lost; a non-durable one,
 * failing the request with the shard's name while another request goes on;
 * the viewer's gateway showing every shard; and every shard reached through
 * the front door (HAProxy) by its route. Each ends with the totals checked
 * against what the producers made.
 */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BufferService, DeliveryMode, ShardAssignment } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { EventBatchSchema, type StreamTotals } from "../../gen/lclstream/data/v1/data_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { fetchRequest, type FetchProgress } from "../../services/cli/fetch.js";
import { createMeshTransport } from "../../services/common/client.js";
import { startViewerGateway } from "../../services/viewer/gateway.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { startHaproxyFront, type HaproxyFront } from "../helpers/haproxy-front.js";
import { freePort } from "../helpers/ports.js";
import { lclstreamBin } from "../helpers/cli.js";
import { useLocalMesh } from "../helpers/mesh.js";
import { internalConfig } from "../helpers/producer-config.js";

const events = 120;
const producer = internalConfig(events, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 64 } }, { seed: 7, rateHz: 60, paced: true, batchSize: 3 });

describe("sharded requests over a pool of 3 buffers", () => {
  // Every buffer a process of its own, as deployed, so that any of them can be killed.
  const m = useLocalMesh({ buffers: 3, bufferProcess: true });
  const requests = () => createClient(DataRequestService, createMeshTransport({ baseUrl: m.mesh.endpoints.request, tls: m.tls }));
  const fetch = (name: string, o: { group?: string; out?: string; onProgress?: (p: FetchProgress) => void } = {}) =>
    fetchRequest({
      requests: requests(),
      transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls: m.tls }),
      name,
      signal: new AbortController().signal,
      ...o,
    });
  const state = async (name: string) => (await requests().getDataRequest({ name })).dataRequest!;

  it("spreads 4 ranks over 3 shards on 3 buffers; two groups each get every event once, merged from every shard", async () => {
    const { dataRequest } = await requests().createDataRequest({
      dataRequest: { producer, parallelism: 4, shardCount: 3, consumerGroups: [{ name: "analysis" }, { name: "archive" }] } as never,
    });
    const name = dataRequest!.name;
    const out = join(m.dir, "sharded");
    const [analysis, archive] = await Promise.all([fetch(name, { group: "analysis", out }), fetch(name, { group: "archive" })]);
    for (const got of [analysis, archive]) {
      expect(got.totals).toMatchObject({ eventCount: BigInt(events) });
      expect(got.totals.producerTotals.map((p) => p.producerRank)).toEqual([0, 1, 2, 3]);
      expect(got.progress.events).toBe(events);
    }
    const r = analysis.request;
    expect(r.shards.map((s) => [s.index, s.producerRanks])).toEqual([
      [0, [0, 3]],
      [1, [1]],
      [2, [2]],
    ]);
    expect(new Set(r.shards.map((s) => s.bufferEndpoint))).toEqual(new Set(m.mesh.endpoints.buffers));
    expect([r.stream, r.bufferEndpoint]).toEqual([r.shards[0]!.stream, r.shards[0]!.bufferEndpoint]);
    // Every event once, from the ranks of the shard it came through.
    const indices: number[] = [];
    for (const file of (await readdir(out)).filter((f) => f.endsWith(".pb"))) {
      const batch = fromBinary(EventBatchSchema, await readFile(join(out, file)));
      indices.push(...batch.eventIndices.map(Number));
    }
    expect(indices.sort((a, b) => a - b)).toEqual(Array.from({ length: events }, (_, i) => i));
    const journal = (await readFile(join(out, "received.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { shard: number });
    expect(new Set(journal.map((j) => j.shard))).toEqual(new Set([0, 1, 2]));
    await expect.poll(async () => (await state(name)).state, { timeout: 30_000 }).toBe(State.SUCCEEDED);
    const ended = await state(name);
    expect(ended.metrics?.events).toBe(BigInt(events));
    expect(ended.metrics?.groups.map((g) => [g.group, g.lagBatches])).toEqual([
      ["analysis", 0n],
      ["archive", 0n],
    ]);
  }, 90_000);

  /** The event indices of the batches written to `out`. */
  const writtenEvents = async (out: string) => {
    const indices: number[] = [];
    for (const file of (await readdir(out)).filter((f) => f.endsWith(".pb"))) {
      indices.push(...fromBinary(EventBatchSchema, await readFile(join(out, file))).eventIndices.map(Number));
    }
    return indices;
  };
  const assignedRequest = async (rateHz = 60) =>
    (
      await requests().createDataRequest({
        dataRequest: {
          producer: { ...producer, event_source: { ...(producer.event_source as object), rate_hz: rateHz } },
          parallelism: 4,
          shardCount: 3,
          consumerGroups: [{ name: "analysis" }, { name: "workers", shardAssignment: ShardAssignment.ASSIGNED }],
        } as never,
      })
    ).dataRequest!.name;

  it("divides the shards among an assigned group's consumers while a merged group reads them all", async () => {
    const name = await assignedRequest();
    const merged = fetch(name, { group: "analysis" });
    const [a, b] = [join(m.dir, "assigned-a"), join(m.dir, "assigned-b")];
    let second: ReturnType<typeof fetch> | undefined;
    // The second consumer joins once the first is reading: the group rebalances.
    const first = fetch(name, {
      group: "workers",
      out: a,
      onProgress: (p) => void (second ??= p.batches >= 2 ? fetch(name, { group: "workers", out: b }) : undefined),
    });
    const [all, one] = await Promise.all([merged, first]);
    const two = await second!;
    expect(all.totals.eventCount).toBe(BigInt(events));
    const [fromA, fromB] = [await writtenEvents(a), await writtenEvents(b)];
    expect(fromA.length, "the first consumer read part").toBeLessThan(events);
    expect(fromB.length, "the second consumer read part").toBeGreaterThan(0);
    expect([...new Set([...fromA, ...fromB])].sort((x, y) => x - y)).toEqual(Array.from({ length: events }, (_, i) => i));
    expect(one.progress.events + two.progress.events).toBeGreaterThanOrEqual(events);
    await expect.poll(async () => (await state(name)).state, { timeout: 30_000 }).toBe(State.SUCCEEDED);
  }, 90_000);

  it("moves the shards of an assigned consumer killed with SIGKILL to the one left", async () => {
    // Slower (6 s), so that the stream is still flowing when the consumer is killed.
    const name = await assignedRequest(20);
    const merged = fetch(name, { group: "analysis" });
    const [a, b] = [join(m.dir, "killed-a"), join(m.dir, "killed-b")];
    // `lclstream get` as a user runs it, joining the assigned group; killed once it has written a few batches.
    const doomed = spawn(
      process.execPath,
      [lclstreamBin, "get", "--resume", name, "--group", "workers", "--out", a, "--url", m.mesh.endpoints.request, "--cert-dir", m.mesh.endpoints.certDir],
      { stdio: "ignore" },
    );
    const exited = new Promise((resolve) => doomed.once("exit", (_, signal) => resolve(signal)));
    await expect
      .poll(async () => (await readFile(join(a, "received.jsonl"), "utf8").catch(() => "")).split("\n").length, { timeout: 30_000, interval: 50 })
      .toBeGreaterThan(3);
    const staying = fetch(name, { group: "workers", out: b });
    doomed.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    const [, kept] = await Promise.all([merged, staying]);
    const [fromA, fromB] = [await writtenEvents(a), await writtenEvents(b)];
    expect(fromA.length, "the killed consumer had read some").toBeGreaterThan(0);
    expect([...new Set([...fromA, ...fromB])].sort((x, y) => x - y)).toEqual(Array.from({ length: events }, (_, i) => i));
    expect(kept.progress.events, "the consumer left took over").toBeGreaterThan(0);
    await expect.poll(async () => (await state(name)).state, { timeout: 30_000 }).toBe(State.SUCCEEDED);
  }, 90_000);

  it("refuses assignment to a group that reads the shards merged", async () => {
    const name = await assignedRequest();
    const watch = requests().watchShardAssignment({ name, consumerGroup: "analysis" });
    await expect(watch[Symbol.asyncIterator]().next()).rejects.toThrow(/reads every shard merged/);
    await requests().cancelDataRequest({ name });
  });

  it("keeps a durable shard across a SIGKILL of its buffer: the consumer resumes from its journal and nothing is lost", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: { producer, parallelism: 3, shardCount: 3, durable: true } as never });
    const name = dataRequest!.name;
    const out = join(m.dir, "durable-shards");
    let crashed: Promise<void> | undefined;
    const first = await fetch(name, {
      out,
      onProgress: (p) => void (crashed ??= p.batches >= 6 ? m.mesh.crashBuffer(2) : undefined),
    }).then(
      (r) => r,
      (e: unknown) => e as Error,
    );
    await crashed;
    expect(crashed, "buffer 2 was killed mid-stream").toBeDefined();
    const { totals, progress } = first instanceof Error ? await fetch(name, { out }) : first;
    expect(totals).toMatchObject({ eventCount: BigInt(events) });
    expect(totals.producerTotals.map((p) => p.producerRank)).toEqual([0, 1, 2]);
    expect(progress.events).toBe(events);
    await expect.poll(async () => (await state(name)).state, { timeout: 30_000 }).toBe(State.SUCCEEDED);
  }, 120_000);

  it("shows the viewer every shard: its gateway merges the shards' latest-only subscriptions and ends once all have", async () => {
    const viewer = await startViewerGateway({ requestUrl: m.mesh.endpoints.request, tls: m.tls, staticDir: m.dir });
    try {
      const { dataRequest } = await requests().createDataRequest({
        dataRequest: {
          producer,
          parallelism: 4,
          shardCount: 3,
          consumerGroups: [{ name: "analysis" }, { name: "viewer", mode: DeliveryMode.LATEST_ONLY }],
        } as never,
      });
      const [page, token] = viewer.url.split("#") as [string, string];
      const gateway = createClient(
        BufferService,
        createConnectTransport({
          baseUrl: page,
          httpVersion: "1.1",
          interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
        }),
      );
      const analysis = fetch(dataRequest!.name, { group: "analysis" });
      await expect.poll(async () => (await state(dataRequest!.name)).stream, { timeout: 20_000 }).not.toBe("");
      const { stream } = await state(dataRequest!.name);
      const ranks = new Set<number>();
      let end: StreamTotals | undefined;
      let started = 0;
      for await (const r of gateway.subscribe({ stream, consumerGroup: "viewer" })) {
        if (r.kind.case === "started") started++;
        if (r.kind.case === "batch") ranks.add(r.kind.value.producerRank);
        if (r.kind.case === "endOfStream") end = r.kind.value;
      }
      await analysis;
      expect(started, "one started message for the merged stream").toBe(1);
      expect(new Set([...ranks].map((rank) => rank % 3)).size, "batches from every shard").toBe(3);
      expect(end?.eventCount).toBe(BigInt(events));
      expect(end?.producerTotals.map((p) => p.producerRank)).toEqual([0, 1, 2, 3]);
    } finally {
      await viewer.close();
    }
  }, 90_000);

  it("fails a request whose non-durable shard is lost with its buffer, naming the shard; another request on the other buffers is unaffected", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: { producer, parallelism: 3, shardCount: 3 } as never });
    const name = dataRequest!.name;
    await expect.poll(async () => (await state(name)).shards.every((s) => s.stream), { timeout: 20_000 }).toBe(true);
    // Another request, with one shard: placed beside one of the first's.
    const other = (await requests().createDataRequest({ dataRequest: { producer } as never })).dataRequest!.name;
    await expect.poll(async () => (await state(other)).bufferEndpoint, { timeout: 20_000 }).not.toBe("");
    const otherBuffer = (await state(other)).bufferEndpoint;
    const victim = m.mesh.endpoints.buffers.findIndex((url, i) => i > 0 && url !== otherBuffer);
    let crashed: Promise<void> | undefined;
    const result = fetch(name, { onProgress: (p) => void (crashed ??= p.batches >= 6 ? m.mesh.crashBuffer(victim) : undefined) });
    const untouched = fetch(other);
    await expect(result).rejects.toThrow(/failed: its shard \d \(streams\/\S+ on https:\/\/127\.0\.0\.1:\d+\) was lost/);
    await crashed;
    const r = await state(name);
    const lost = r.shards.find((s) => s.bufferEndpoint === m.mesh.endpoints.buffers[victim]);
    expect(r.state).toBe(State.FAILED);
    expect(r.stateReason).toContain(`its shard ${lost!.index} (${lost!.stream} on ${lost!.bufferEndpoint}) was lost`);
    expect((await untouched).totals.eventCount, "the request on the other buffers got everything").toBe(BigInt(events));
    await expect.poll(async () => (await state(other)).state, { timeout: 30_000 }).toBe(State.SUCCEEDED);
  }, 90_000);
});

describe("a sharded request through the front door (HAProxy, mesh/haproxy.cfg)", () => {
  let dir: string;
  let mesh: LocalMesh;
  let haproxy: HaproxyFront;
  let tls: CertMaterial;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-shards-front-"));
    const [frontPort, enrollPort] = [await freePort(), await freePort()];
    mesh = await startLocalMesh({ stateDir: join(dir, "state"), logLevel: "silent", buffers: 3, front: { url: `https://127.0.0.1:${frontPort}` } });
    tls = await readCertDir(mesh.endpoints.certDir);
    haproxy = await startHaproxyFront({ mesh, stateDir: join(dir, "state"), dir, frontPort, enrollPort });
  }, 60_000);
  afterAll(async () => {
    await haproxy?.close();
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("reaches every shard's buffer through the front by its route, and gets every event once", async () => {
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: haproxy.url, tls }));
    const { dataRequest } = await requests.createDataRequest({ dataRequest: { producer, parallelism: 3, shardCount: 3 } as never });
    const got = await fetchRequest({
      requests,
      transportFor: (url) => {
        expect(url, "consumers are sent to the front door for every shard").toBe(haproxy.url);
        return createMeshTransport({ baseUrl: url, tls });
      },
      name: dataRequest!.name,
      signal: new AbortController().signal,
    });
    expect(got.request.shards.map((s) => s.bufferRoute)).toEqual(["", "1", "2"]);
    expect(got.totals.eventCount).toBe(BigInt(events));
    expect(got.totals.producerTotals.map((p) => p.producerRank)).toEqual([0, 1, 2]);
    expect(got.progress.events).toBe(events);
  }, 90_000);
});
