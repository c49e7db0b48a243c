/** ProducerService over mTLS, and producer ranks publishing into a real buffer that restarts under them. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { DataType } from "../../gen/lclstream/data/v1/data_pb.js";
import { createMeshTransport, publishedBatches } from "../../services/common/client.js";
import type { Transport } from "@connectrpc/connect";
import { createLogger } from "../../services/common/logger.js";
import { build as buildBuffer, type BufferServer } from "../../services/buffer/server.js";
import { parseProducerConfig } from "../../services/producer/config.js";
import { produce } from "../../services/producer/run.js";
import type { DetectorEvent, EventSource } from "../../services/producer/event.js";
import { createBufferHandler } from "../../services/producer/handlers.js";
import { runPipeline, type ProducedBatch } from "../../services/producer/pipeline.js";
import { build as buildProducer, type ProducerServer } from "../../services/producer/server.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { consume } from "../helpers/buffer.js";
import { freePort } from "../helpers/ports.js";
import { failure } from "../helpers/errors.js";
import { hdf5Config, internalConfig } from "../helpers/producer-config.js";

const smallSynthetic = (events: number, parts: Parameters<typeof internalConfig>[2] = {}) =>
  internalConfig(events, { det: { type: "SyntheticAreaDetector", geometry: "small" }, ts: { type: "SyntheticTimestamp" } }, { seed: 3, ...parts });

describe("ProducerService", () => {
  let pki: TestPki;
  let producer: ProducerServer;
  // The request service streams from the producer (a submitter); users go through data requests.
  const client = (tls = pki.proxy) => createClient(ProducerService, createMeshTransport({ baseUrl: producer.url, tls }));

  beforeAll(async () => {
    pki = await createTestPki();
    producer = await buildProducer({ dataRoots: [tmpdir()], submitters: [pki.uri("service", "proxy")], admins: ["user/admin"] }, { tls: pki.server });
  });
  afterAll(() => producer?.close());

  it("lists its sources with their fields, dtypes and shapes", async () => {
    const { sources } = await client().listSources({});
    const crystallography = sources.find((s) => s.name === "synthetic/crystallography")!;
    expect(crystallography.type).toBe("InternalEventSource");
    expect(crystallography.fields.find((f) => f.name === "jungfrau4M")).toMatchObject({ dtype: DataType.UINT16, shape: [2048n, 2048n] });
    expect(crystallography.fields.map((f) => f.name)).toContain("jungfrau4M_peaks");
    expect(sources.find((s) => s.name === "synthetic/epix")!.fields[0]!.shape).toEqual([16n, 352n, 384n]);
  });

  it("streams a rank's batches straight to the caller, then its totals", async () => {
    const batches = [];
    let end;
    for await (const r of client().produce({ config: smallSynthetic(10), rank: 1, rankCount: 2 })) {
      if (r.kind.case === "batch") batches.push(r.kind.value);
      else if (r.kind.case === "endOfStream") end = r.kind.value;
    }
    expect(batches.flatMap((b) => b.eventIndices.map(Number))).toEqual([1, 3, 5, 7, 9]);
    expect(end).toMatchObject({ batchCount: 2n, eventCount: 5n });
  });

  it("refuses a bad config with field violations, handlers, and files outside its data directories", async () => {
    expect(
      await failure(
        client()
          .produce({ config: { ...smallSynthetic(2), colour: 1 } })
          [Symbol.asyncIterator]()
          .next(),
      ),
    ).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_CONFIG",
    });
    expect(
      await failure(
        client()
          .produce({ config: smallSynthetic(2, { handlers: [{ type: "BinaryFileWritingDataHandler", write_directory: "/etc" }] }) })
          [Symbol.asyncIterator]()
          .next(),
      ),
    ).toMatchObject({ code: Code.InvalidArgument });
    const outside = hdf5Config(["/etc/passwd"], { x: { type: "HDF5Dataset", path: "/x" } });
    expect(await failure(client().produce({ config: outside })[Symbol.asyncIterator]().next())).toMatchObject({
      code: Code.PermissionDenied,
      reason: "PATH_NOT_ALLOWED",
    });
  });

  it("streams only to admins and submitters; a user is sent to data requests, and sees no one else's pipelines", async () => {
    expect(
      await failure(
        client(pki.alice)
          .produce({ config: smallSynthetic(2) })
          [Symbol.asyncIterator]()
          .next(),
      ),
    ).toMatchObject({ code: Code.PermissionDenied, reason: "PRODUCE_NOT_ALLOWED" });
    const running = client()
      .produce({
        config: { ...smallSynthetic(1000), event_source: { type: "InternalEventSource", number_of_events_to_generate: 1000, rate_hz: 5, paced: true } },
      })
      [Symbol.asyncIterator]();
    await running.next();
    expect((await client(pki.admin).getStatus({})).pipelines).toHaveLength(1);
    expect((await client(pki.alice).getStatus({})).pipelines).toHaveLength(0);
    await running.return?.();
    expect((await client(pki.alice).listSources({})).sources.length).toBeGreaterThan(0);
  });
});

describe("producer ranks publishing to a buffer", () => {
  let pki: TestPki;
  let stateDir: string;
  let buffer: BufferServer;
  let port: number;
  // What the buffer logs, at debug: which calls it counts as routine.
  const bufferLog: { level: number; method?: string; msg: string }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void bufferLog.push(JSON.parse(line)) });
  const startBuffer = async () => {
    buffer = await buildBuffer({ stateDir, port, submitters: ["user/alice"] }, { tls: pki.server, logger });
  };

  beforeAll(async () => {
    pki = await createTestPki();
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-produce-"));
    port = await freePort(); // the buffer restarts on it
    await startBuffer();
  });
  afterAll(async () => {
    await buffer?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("delivers every event of every rank once, even when the buffer restarts mid-stream", async () => {
    const transport = () => createMeshTransport({ baseUrl: buffer.url, tls: pki.alice });
    const alice = createClient(BufferService, transport());
    const { stream, publishToken } = await alice.createStream({ stream: { durable: true, producerCount: 2, consumerGroups: [{ name: "g" }] } });
    const config = parseProducerConfig({
      ...smallSynthetic(60, { handlers: [{ type: "BufferStreamingDataHandler" }] }),
      event_source: { type: "InternalEventSource", number_of_events_to_generate: 60, seed: 3, rate_hz: 40, paced: true },
    });
    const ranks = [0, 1].map((rank) =>
      produce(config, {
        rank,
        ranks: 2,
        buffer: { transport: transport(), stream: stream!.name, token: publishToken },
        logger: createLogger("test", "silent"),
        signal: new AbortController().signal,
      }),
    );
    // A restart while the ranks publish: they find where they stand and go on.
    await new Promise((r) => setTimeout(r, 500));
    await buffer.close();
    await startBuffer();
    const totals = await Promise.all(ranks);
    expect(totals.map((t) => t.events)).toEqual([30, 30]);

    const got = await consume(createClient(BufferService, transport()), stream!.name, "g");
    const events = got.batches.flatMap((b) => b.eventIndices.map(Number)).sort((a, b) => a - b);
    expect(events).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(got.end).toMatchObject({ batchCount: 16n, eventCount: 60n });
  });

  it("asks the buffer how far it got at three quarters of its bound, in the background, and waits only past the bound", async () => {
    bufferLog.length = 0;
    const base = createMeshTransport({ baseUrl: buffer.url, tls: pki.alice });
    // The asks (a Publish of nothing but `open`) are held until the test lets them through.
    let asks = 0;
    let letAsksThrough!: () => void;
    const asksHeld = new Promise<void>((r) => (letAsksThrough = r));
    const transport: Transport = {
      unary: (...a) => base.unary(...a),
      async stream(method, signal, timeoutMs, header, input, contextValues) {
        if (method.name === "Publish" && !contextValues?.get(publishedBatches)) {
          asks++;
          await asksHeld;
        }
        return base.stream(method, signal, timeoutMs, header, input, contextValues);
      },
    };
    const alice = createClient(BufferService, transport);
    const { stream, publishToken } = await alice.createStream({ stream: { producerCount: 1, consumerGroups: [{ name: "g" }] } });
    const eventBytes = 64 * 1024;
    const events = 16;
    const source: EventSource = {
      eventCount: events,
      fields: () => [{ name: "frame", dtype: "uint8", shape: [eventBytes], description: "" }],
      async *events() {
        for (let index = 0; index < events; index++)
          yield { index, timeNs: 0n, fields: { frame: { dtype: "uint8", shape: [eventBytes], data: new Uint8Array(eventBytes).fill(index) } } };
      },
      close() {},
    };
    const config = parseProducerConfig(smallSynthetic(events, { batchSize: 1, handlers: [{ type: "BufferStreamingDataHandler" }] }));
    const handler = createBufferHandler({
      transport,
      stream: stream!.name,
      token: publishToken,
      rank: 0,
      logger: createLogger("test", "silent"),
      // Ten batches and their framing (65 bytes each): more than three quarters of it is eight batches, more than all of it eleven.
      maxUnconfirmedBytes: 10 * eventBytes + 1000,
      signal: new AbortController().signal,
    });
    const batches = runPipeline(config, source, { rank: 0, ranks: 1, stream: stream!.name, signal: new AbortController().signal });
    const next = async () => handler.handle((await batches.next()).value as ProducedBatch);
    // Up to the bound no batch waits, though the ask is held; the ask went out at the eighth batch.
    for (let n = 1; n <= 11; n++) {
      await next();
      expect(asks).toBe(n < 8 ? 0 : 1);
    }
    // The twelfth is past the bound: it waits for the answer.
    let twelfthTaken = false;
    const twelfth = next().then(() => (twelfthTaken = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(twelfthTaken).toBe(false);
    letAsksThrough();
    await twelfth;
    for await (const b of batches) await handler.handle(b);
    await handler.finish({ batches: events, events });
    handler.close();
    const got = await consume(alice, stream!.name, "g");
    expect(got.batches.flatMap((b) => b.eventIndices.map(Number))).toEqual(Array.from({ length: events }, (_, i) => i));
    // The asks and the acknowledgements are logged at debug; the call that carried the batches, at info.
    const finished = (method: string) => bufferLog.filter((l) => l.msg === "call finished" && l.method === method).map((l) => l.level);
    expect(finished("Publish").filter((level) => level === 30)).toHaveLength(1);
    expect(new Set(finished("Publish"))).toEqual(new Set([20, 30]));
    expect(finished("Ack").length).toBeGreaterThan(0);
    expect(new Set(finished("Ack"))).toEqual(new Set([20]));
  });

  it("gives a batch's memory back to its source once the buffer has it, and never while the run keeps a hold", async () => {
    const transport = () => createMeshTransport({ baseUrl: buffer.url, tls: pki.alice });
    const alice = createClient(BufferService, transport());
    // A source that reuses memory, as the psana source does: each event says when it is given back.
    const released: number[] = [];
    const source: EventSource = {
      eventCount: 12,
      fields: () => [{ name: "frame", dtype: "uint8", shape: [4096], description: "" }],
      async *events() {
        for (let index = 0; index < 12; index++) {
          const event: DetectorEvent = { index, timeNs: 0n, fields: { frame: { dtype: "uint8", shape: [4096], data: new Uint8Array(4096).fill(index) } } };
          yield { ...event, release: () => released.push(index) };
        }
      },
      close() {},
    };
    const config = parseProducerConfig(smallSynthetic(12, { batchSize: 3, handlers: [{ type: "BufferStreamingDataHandler" }] }));
    for (const runLetsGo of [true, false]) {
      released.length = 0;
      const { stream, publishToken } = await alice.createStream({ stream: { producerCount: 1, consumerGroups: [{ name: "g" }] } });
      const signal = new AbortController().signal;
      const handler = createBufferHandler({
        transport: transport(),
        stream: stream!.name,
        token: publishToken,
        rank: 0,
        logger: createLogger("test", "silent"),
        signal,
      });
      // As the run does: a hold while the handlers take the batch, let go after, unless a handler may read it later.
      const batches = runPipeline(config, source, { rank: 0, ranks: 1, stream: stream!.name, signal });
      let next = await batches.next();
      for (; !next.done; next = await batches.next()) {
        const letGo = next.value.retain();
        await handler.handle(next.value);
        if (runLetsGo) letGo();
      }
      await handler.finish({ batches: 4, events: 12 });
      handler.close();
      // Every event given back once, after the buffer confirmed it; or none while the run holds them.
      expect(released.sort((a, b) => a - b)).toEqual(runLetsGo ? Array.from({ length: 12 }, (_, i) => i) : []);
      const got = await consume(createClient(BufferService, transport()), stream!.name, "g");
      expect(got.batches.flatMap((b) => b.eventIndices.map(Number))).toEqual(Array.from({ length: 12 }, (_, i) => i));
    }
  });
});
