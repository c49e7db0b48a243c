/**
 * The processes a benchmark runs, one role each: `node dist/bench/roles.js ROLE JSON`.
 * Each prints one JSON line with its result on stdout when told to stop
 * (SIGTERM) or when its measurement ends.
 *
 *   tls-sink     TLS server that counts bytes         -> { port } then { bytes, seconds, cpuMs }
 *   tls-relay    TLS server piping to one TLS client, or copying to several (fan-out) -> { port }
 *   tls-source   TLS client writing chunks forever
 *   publish      a producer rank publishing batches to a buffer stream (with `measure`: -> { bytes, seconds };
 *                with `count`: that many, then done -> { published }; with `columnar`: as arrays)
 *   subscribe    a consumer of one group, acknowledging -> { bytes, seconds, latenciesMs? }
 *                (with `count`: timed from batch `warmupCount` to the count-th -> { bytes, seconds, cpuMs })
 *   subscribe-bare  the same call on a bare HTTP/2 session, messages framed only (with `count`, as subscribe;
 *                with `assemble`: each gathered into one buffer)
 *   floor        what AES-GCM and a memory copy cost per MiB -> { aesMsPerMiB, copyMsPerMiB }
 */
import { createCipheriv, randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { connect, createServer, type TLSSocket } from "node:tls";
import { ConnectError, type ContextValues, createClient, createContextValues, type Client } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { BufferService, SubscribeRequestSchema } from "../gen/lclstream/buffer/v1/buffer_pb.js";
import { ColumnsSchema, DataType, EventBatchSchema, PayloadFormat, SerializedPayloadSchema } from "../gen/lclstream/data/v1/data_pb.js";
import { borrowedResponses, createMeshTransport, publishedBatches } from "../services/common/client.js";
import { errorInfo } from "../services/common/errors.js";
import type { CertMaterial } from "../services/common/pki.js";
import { Acker } from "../services/common/acker.js";
import { ByteParts, contiguous } from "../services/common/byte-parts.js";
import { frameHeader, GrpcFrameReader, bytesFieldPrefix } from "../services/common/grpc-frames.js";
import { WireBufferService } from "../services/buffer/wire.js";
import { nativeAesFloor } from "./aes-floor.js";

interface Args {
  tls: CertMaterial;
  port?: number;
  /** The sink port(s) a relay sends to: every chunk goes to each. */
  to?: number | number[];
  chunkBytes?: number;
  url?: string;
  stream?: string;
  token?: string;
  group?: string;
  /** Batches per second; 0 is as fast as the stream takes them. */
  rate?: number;
  warmupMs?: number;
  measureMs?: number;
  /** Do not acknowledge (a stalled consumer). */
  stall?: boolean;
  /** The publisher measures what it sends (one hop, nobody downstream). */
  measure?: boolean;
  /** Batches to publish (then done), or to receive before reporting; unset: until stopped. */
  count?: number;
  /** Of those `count` received, how many come before the timing starts. */
  warmupCount?: number;
  /** Publish batches as columnar arrays (one uint8 field) instead of a serialized payload. */
  columnar?: boolean;
  /** subscribe-bare: gather each message into one contiguous buffer, as every gRPC client hands messages over. */
  assemble?: boolean;
  /** A meter prints `{ measuring: true }` when its window opens (so the bench can read other processes' CPU over the same window). */
  announce?: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const [role, json] = process.argv.slice(2);
const args = JSON.parse(json ?? "{}") as Args;
const tlsOptions = { ca: args.tls?.caPem, cert: args.tls?.certPem, key: args.tls?.keyPem, minVersion: "TLSv1.3" as const };
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

/** The CPU this process (all its threads) used since `start` (a `process.cpuUsage()`), in ms. */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const cpu = process.cpuUsage(start);
  return (cpu.user + cpu.system) / 1000;
}

/** Counts bytes (and the process's CPU) between warmup and the end of the measurement window, then reports and exits. */
function meter(extra: () => Record<string, unknown> = () => ({})) {
  const warmupMs = args.warmupMs ?? 500;
  const measureMs = args.measureMs ?? 3000;
  let start = 0;
  let bytes = 0;
  let first = 0;
  let cpuAtStart = process.cpuUsage();
  return {
    add(n: number) {
      const now = performance.now();
      if (!first) {
        first = now;
        setTimeout(() => {
          if (args.announce) print({ measuring: true });
          start = performance.now();
          cpuAtStart = process.cpuUsage();
          setTimeout(() => {
            print({ bytes, seconds: (performance.now() - start) / 1000, cpuMs: cpuMsSince(cpuAtStart), ...extra() });
            process.exit(0);
          }, measureMs);
        }, warmupMs);
      }
      if (start) bytes += n;
    },
    get measuring() {
      return start > 0;
    },
  };
}

async function tlsSink() {
  const m = meter();
  // A peer that goes away (the relay, once another sink has measured enough) ends the counting, not the process.
  const server = createServer({ ...tlsOptions, requestCert: true, rejectUnauthorized: true }, (socket) =>
    socket.on("data", (d: Buffer) => m.add(d.length)).on("error", () => undefined),
  );
  server.listen(0, "127.0.0.1", () => print({ port: (server.address() as { port: number }).port }));
}

async function tlsRelay() {
  const ports = [args.to!].flat();
  const server = createServer({ ...tlsOptions, requestCert: true, rejectUnauthorized: true }, (inbound) => {
    const outbounds = new Set(ports.map((port) => connect({ ...tlsOptions, host: "127.0.0.1", port, servername: "localhost" })));
    // Reads on only while every sink keeps up: the same backpressure as pipe, over all of them.
    const waitingFor = new Set<TLSSocket>();
    const drained = (out: TLSSocket) => waitingFor.delete(out) && waitingFor.size === 0 && inbound.resume();
    // A sink that has measured enough goes away: the others carry on; with the last goes this connection.
    const gone = (out: TLSSocket) => {
      outbounds.delete(out);
      drained(out);
      if (outbounds.size === 0) inbound.destroy();
    };
    inbound.on("error", () => outbounds.forEach((out) => out.destroy()));
    for (const out of outbounds) {
      out.on("error", () => gone(out));
      out.on("close", () => gone(out));
    }
    inbound.on("data", (chunk: Buffer) => {
      for (const out of outbounds) {
        if (!out.write(chunk) && !waitingFor.has(out)) {
          waitingFor.add(out);
          out.once("drain", () => drained(out));
        }
      }
      if (waitingFor.size) inbound.pause();
    });
  });
  server.listen(0, "127.0.0.1", () => print({ port: (server.address() as { port: number }).port }));
}

async function tlsSource() {
  const chunk = Buffer.alloc(args.chunkBytes ?? 1 << 20, 7);
  const socket: TLSSocket = connect({ ...tlsOptions, host: "127.0.0.1", port: args.port!, servername: "localhost" });
  const write = () => {
    while (socket.write(chunk));
  };
  socket.on("secureConnect", write);
  socket.on("drain", write);
  // The sink closes the connection once it has measured: the end of this role, not a failure.
  socket.on("error", () => process.exit(0));
}

/**
 * One batch's bytes: small fields encoded per batch, the payload field
 * encoded once and appended, as parts the transport sends
 * without joining them (like the raw TLS source, which writes one buffer).
 */
function batchEncoder(stream: string, payloadBytes: number, columnar = false) {
  const data = new Uint8Array(payloadBytes).fill(3);
  // Columnar: one uint8 field "frame" of one event, as a consumer that decodes arrays reads it.
  const payload = columnar
    ? toBinary(ColumnsSchema, create(ColumnsSchema, { fields: { frame: { dtype: DataType.UINT8, shape: [1n, BigInt(payloadBytes)], data } } }))
    : toBinary(SerializedPayloadSchema, create(SerializedPayloadSchema, { format: PayloadFormat.HDF5, data }));
  const field = bytesFieldPrefix(columnar ? 6 : 7, payload.byteLength);
  return (seq: number, sentNs: bigint) => {
    const head = toBinary(
      EventBatchSchema,
      create(EventBatchSchema, { stream, producerRank: 0, seq: BigInt(seq), eventIndices: [BigInt(seq)], eventTimeUnixNs: [sentNs] }),
    );
    return new ByteParts([head, field, payload]);
  };
}

async function publish() {
  const client = createClient(WireBufferService, createMeshTransport({ baseUrl: args.url!, tls: args.tls })) as unknown as {
    publish(messages: AsyncIterable<unknown>, options: { contextValues: ContextValues }): Promise<unknown>;
  };
  const encode = batchEncoder(args.stream!, args.chunkBytes ?? 1 << 20, args.columnar);
  const interval = args.rate ? 1000 / args.rate : 0;
  const m = args.measure ? meter() : undefined;
  async function* messages() {
    yield { kind: { case: "open", value: { stream: args.stream, producerRank: 0, publishToken: args.token } } };
    let next = performance.now();
    for (let seq = 0; args.count === undefined || seq < args.count; seq++) {
      if (interval) {
        next += interval;
        const wait = next - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      // The monotonic clock, shared by the processes of one machine, for latency.
      yield { kind: { case: "batch", value: encode(seq, process.hrtime.bigint()) } };
      // Taken: the transport asked for the next one (HTTP/2 flow control holds it back otherwise).
      m?.add(args.chunkBytes ?? 1 << 20);
    }
    yield { kind: { case: "done", value: { batchCount: BigInt(args.count!), eventCount: BigInt(args.count!) } } };
  }
  try {
    await client.publish(messages(), { contextValues: createContextValues().set(publishedBatches, true) });
  } catch (error) {
    // A publisher with no count runs until the bench deletes its stream: that is its end, not a failure.
    const deleted = error instanceof ConnectError && errorInfo(error)?.reason === "STREAM_DELETED";
    if (!deleted || args.count !== undefined) throw error;
    return;
  }
  print({ published: args.count });
}

/**
 * Times batches `warmupCount` + 1 to `count` (the ones before warm the
 * process up, as the other roles' warmup window does), then reports its
 * throughput and the CPU it took, and exits.
 */
function countMeter(count: number, warmupCount = 1) {
  let received = 0;
  let bytes = 0;
  let start = 0;
  let cpuAtStart = process.cpuUsage();
  return {
    add(n: number) {
      if (++received === warmupCount) {
        start = performance.now();
        cpuAtStart = process.cpuUsage();
      } else if (received > warmupCount) bytes += n;
      if (received < count) return;
      print({ bytes, seconds: (performance.now() - start) / 1000, cpuMs: cpuMsSince(cpuAtStart) });
      process.exit(0);
    },
    measuring: true,
  };
}

async function subscribe() {
  const client: Client<typeof BufferService> = createClient(BufferService, createMeshTransport({ baseUrl: args.url!, tls: args.tls }));
  const latencies: number[] = [];
  const m = args.count ? countMeter(args.count, args.warmupCount) : meter(() => (args.rate ? { latenciesMs: latencies } : {}));
  let consumerId = "";
  // As `lclstream get` acknowledges: in groups of half the window the buffer gives it.
  const acker = new Acker((seqs) => client.ack({ stream: args.stream!, consumerGroup: args.group!, consumerId, seqs }), { intervalMs: 20 });
  // As `lclstream get`: done with each batch before it takes the next, so they share memory.
  const contextValues = createContextValues().set(borrowedResponses, true);
  for await (const r of client.subscribe({ stream: args.stream!, consumerGroup: args.group! }, { contextValues })) {
    if (r.kind.case === "started") {
      consumerId = r.kind.value.consumerId;
      acker.useWindow(r.kind.value);
    }
    if (r.kind.case !== "batch") continue;
    const batch = r.kind.value;
    if (args.rate && m.measuring) latencies.push(Number(process.hrtime.bigint() - batch.eventTimeUnixNs[0]!) / 1e6);
    const bytes =
      batch.payload.case === "serialized"
        ? batch.payload.value.data.byteLength
        : Object.values(batch.payload.value?.fields ?? {}).reduce((n, a) => n + a.data.byteLength, 0);
    m.add(bytes);
    if (!args.stall) acker.add(r.seq, bytes);
  }
}

/**
 * What any Node HTTP/2 client pays to receive a Subscribe stream: the same
 * call on a bare node:http2 session, its messages framed but neither decoded
 * nor acknowledged (in flight up to `count`), with a `countMeter`.
 */
async function subscribeBare() {
  const session = http2.connect(args.url!, { ...tlsOptions, servername: "localhost", settings: { initialWindowSize: 8 * MiB } });
  session.on("connect", () => session.setLocalWindowSize(16 * MiB));
  const call = session.request({
    ":method": "POST",
    ":path": "/lclstream.buffer.v1.BufferService/Subscribe",
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  const request = toBinary(
    SubscribeRequestSchema,
    create(SubscribeRequestSchema, { stream: args.stream!, consumerGroup: args.group!, maxInFlight: args.count! + 1 }),
  );
  call.end(Buffer.concat([frameHeader(request.byteLength), request]));
  const m = countMeter(args.count! + 1, args.warmupCount! + 1); // its first message says "started"
  const reader = new GrpcFrameReader(64 * MiB);
  call.on("data", (chunk: Buffer) => {
    for (const parts of reader.push(chunk) as Uint8Array[][]) m.add(args.assemble ? contiguous(parts).byteLength : parts.reduce((n, p) => n + p.byteLength, 0));
  });
}

/**
 * The physical floor of a relay, in a process of its own (nothing else in its heap): AES-256-GCM (what TLS 1.3
 * between Node peers negotiates, TLS_AES_256_GCM_SHA384) over 1 MiB in 16 KiB records, and a 1 MiB copy between
 * buffers larger than the caches, in ms per MiB, over half a second each after a warm-up. AES is timed in Node's own
 * OpenSSL by the bench's native helper (native/src/aes-floor.cc), records sealed in place as TLS does;
 * node:crypto allocates a buffer for every record it returns, which cost more than AES did, so it is only the
 * fallback when the helper is not built (`aesBy` says which).
 */
async function floor() {
  const perMiB = (pass: () => void) => {
    for (const t = performance.now(); performance.now() - t < 200; ) pass(); // compiled and warm first
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 500) {
      pass();
      n++;
    }
    return (performance.now() - t0) / n;
  };
  const helper = nativeAesFloor();
  const aesMsPerMiB = helper ? helper.aesGcmMsPerMiB(500) : nodeCryptoAesMsPerMiB(perMiB);
  const from = Buffer.alloc(64 * MiB, 1);
  const to = Buffer.alloc(64 * MiB);
  let at = 0;
  const copyMsPerMiB = perMiB(() => {
    from.copy(to, at, at, at + MiB);
    at = (at + MiB) % (64 * MiB);
  });
  print({ aesMsPerMiB, copyMsPerMiB, aesBy: helper ? "native" : "node:crypto" });
}

/** The fallback floor: node:crypto's AES-256-GCM over 1 MiB in 16 KiB records (its allocations included). */
function nodeCryptoAesMsPerMiB(perMiB: (pass: () => void) => number): number {
  const [key, iv, chunk] = [randomBytes(32), randomBytes(12), randomBytes(MiB)];
  return perMiB(() => {
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    for (let at = 0; at < MiB; at += 16 * KiB) cipher.update(chunk.subarray(at, at + 16 * KiB));
    cipher.final();
  });
}

const roles: Record<string, () => Promise<void>> = {
  "tls-sink": tlsSink,
  "tls-relay": tlsRelay,
  "tls-source": tlsSource,
  publish,
  subscribe,
  "subscribe-bare": subscribeBare,
  floor,
};
const run = roles[role ?? ""];
if (!run) {
  console.error(`unknown role ${role}; one of ${Object.keys(roles).join(", ")}`);
  process.exit(2);
}
process.on("SIGTERM", () => process.exit(0));
await run();
