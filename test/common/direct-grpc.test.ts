/**
 * The direct data path (gRPC framed by hand on Node's HTTP/2 streams): the
 * framing itself, and the buffer's Publish/Subscribe served and called
 * through it over real mTLS, bad frames included.
 */
import * as http2 from "node:http2";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, createClient, createContextValues, type Client } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { type EventBatch, EventBatchSchema } from "../../gen/lclstream/data/v1/data_pb.js";
import { BufferService, SubscribeRequestSchema, SubscribeResponseSchema } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { build, type BufferServer } from "../../services/buffer/server.js";
import { readBatchHeader, WirePublishRequestSchema, WireSubscribeResponseSchema } from "../../services/buffer/wire.js";
import { borrowedResponses, createMeshTransport, publishedBatches } from "../../services/common/client.js";
import { nativeStreamModule } from "../../services/common/native-stream.js";
import { errorInfo } from "../../services/common/errors.js";
import { ByteParts, contiguous } from "../../services/common/byte-parts.js";
import { decodeFrame, encodeFrameParts, frameHeader, GrpcFrameReader, writeAheadBytes } from "../../services/common/grpc-frames.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { bareSubscribe, consume, makeBatch, onResponses, publishMessages } from "../helpers/buffer.js";
import { codeAndReason } from "../helpers/errors.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";

const KiB = 1024;

describe("gRPC framing by hand", () => {
  const framed = (...messages: Uint8Array[]) => Buffer.concat(messages.flatMap((m) => [frameHeader(m.byteLength), m]));

  it("reassembles messages split across chunks and several in one chunk, in order", () => {
    const messages = [new Uint8Array(3).fill(1), new Uint8Array(0), new Uint8Array(40_000).fill(2), new Uint8Array(7).fill(3)];
    const bytes = framed(...messages);
    for (const step of [1, 5, 6, 4096, bytes.length]) {
      const reader = new GrpcFrameReader(1 << 20);
      const got: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; at += step) got.push(...(reader.push(bytes.subarray(at, at + step)) as Uint8Array[][]).map(contiguous));
      expect(got.map((m) => Buffer.from(m).toString("hex"))).toEqual(messages.map((m) => Buffer.from(m).toString("hex")));
      expect(reader.partial).toBe(false);
    }
  });

  it("hands out views of the chunks, never copies", () => {
    const chunk = framed(new Uint8Array(100).fill(9));
    const [message] = (new GrpcFrameReader(1 << 20).push(chunk) as Uint8Array[][])[0]!;
    expect(message!.buffer).toBe(chunk.buffer);
    expect(message!.constructor).toBe(Uint8Array);
    const split = framed(new Uint8Array(100).fill(8));
    const reader = new GrpcFrameReader(1 << 20);
    expect(reader.push(split.subarray(0, 50))).toEqual([]);
    const [parts] = reader.push(split.subarray(50)) as Uint8Array[][];
    expect(parts!.map((p) => [p.buffer === split.buffer, p.byteLength])).toEqual([
      [true, 45],
      [true, 55],
    ]);
  });

  it("decodes a message that is one large bytes field without copying it, and others whole", () => {
    const batch = toBinary(EventBatchSchema, makeBatch("streams/s", 0, 1, 4, 64 * KiB));
    const encoded = Buffer.concat(
      encodeFrameParts(WirePublishRequestSchema, create(WirePublishRequestSchema, { kind: { case: "batch", value: batch } })),
    ).subarray(5);
    const parts = [encoded.subarray(0, 2), encoded.subarray(2, 30_000), encoded.subarray(30_000)];
    const message = decodeFrame(WirePublishRequestSchema, parts) as unknown as { kind: { value: ByteParts } };
    const value = message.kind.value;
    expect(value).toBeInstanceOf(ByteParts);
    expect(value.parts.every((p) => p.buffer === encoded.buffer)).toBe(true);
    expect(Buffer.from(value.contiguous()).equals(Buffer.from(batch))).toBe(true);
    const header = readBatchHeader(value);
    expect(header).toEqual({ producerRank: 0, seq: 1n, eventCount: 4 });
    // Open is small: decoded whole, as the generated decoder does.
    const open = toBinary(
      WirePublishRequestSchema,
      create(WirePublishRequestSchema, { kind: { case: "open", value: { stream: "streams/s", publishToken: "t".repeat(20_000) } } }),
    );
    expect((decodeFrame(WirePublishRequestSchema, [open.subarray(0, 10), open.subarray(10)]) as unknown as { kind: unknown }).kind).toMatchObject({
      case: "open",
      value: { stream: "streams/s" },
    });
  });

  it("reads a batch's header across its parts, and a batch with fields after its payload in full", () => {
    const batch = makeBatch("streams/s", 3, 9, 5000, 200 * KiB);
    const encoded = toBinary(EventBatchSchema, batch);
    const inPieces = new ByteParts(Array.from({ length: Math.ceil(encoded.length / 1000) }, (_, i) => encoded.subarray(i * 1000, (i + 1) * 1000)));
    expect(readBatchHeader(inPieces)).toEqual({ producerRank: 3, seq: 9n, eventCount: 5000 });
    // The payload first, the header after it (a legal, unusual order).
    const payloadFirst = Buffer.concat([
      toBinary(EventBatchSchema, create(EventBatchSchema, { payload: batch.payload })),
      toBinary(EventBatchSchema, create(EventBatchSchema, { producerRank: 3, seq: 9n, eventIndices: [1n, 2n] })),
    ]);
    expect(readBatchHeader(new ByteParts([payloadFirst.subarray(0, 100_000), payloadFirst.subarray(100_000)]))).toEqual({
      producerRank: 3,
      seq: 9n,
      eventCount: 2,
    });
  });

  it("refuses a message over the limit before reading it, and a compressed one", () => {
    expect(new GrpcFrameReader(100).push(frameHeader(101))).toEqual({ kind: "too-large", length: 101 });
    const compressed = frameHeader(1);
    compressed[0] = 1;
    expect(new GrpcFrameReader(100).push(compressed)).toEqual({ kind: "compressed" });
    const reader = new GrpcFrameReader(100);
    reader.push(frameHeader(10).subarray(0, 3));
    expect(reader.partial).toBe(true);
  });

  it("encodes large bytes fields by reference into the same message the generated encoder makes", () => {
    const batch = toBinary(EventBatchSchema, makeBatch("streams/s", 1, 2, 3, 64 * KiB));
    const response = create(WireSubscribeResponseSchema, { seq: 5n, redelivery: true, kind: { case: "batch", value: batch } });
    const parts = encodeFrameParts(WireSubscribeResponseSchema, response);
    expect(parts).toContain(batch); // sent as it is, never copied
    const inPieces = new ByteParts([batch.subarray(0, 100), batch.subarray(100)]);
    const fromParts = encodeFrameParts(
      WireSubscribeResponseSchema,
      create(WireSubscribeResponseSchema, { seq: 5n, redelivery: true, kind: { case: "batch", value: inPieces as never } }),
    );
    // By reference: the very part objects, not equal copies of them.
    for (const part of inPieces.parts) expect(fromParts.some((p) => p === part)).toBe(true);
    expect(Buffer.concat(fromParts).equals(Buffer.concat(parts))).toBe(true);
    const whole = Buffer.concat(parts);
    expect(whole.readUInt32BE(1)).toBe(whole.length - 5);
    const decoded = fromBinary(SubscribeResponseSchema, new Uint8Array(whole.subarray(5)));
    expect(decoded).toEqual(fromBinary(SubscribeResponseSchema, toBinary(WireSubscribeResponseSchema, response)));
    expect(decoded.kind.case === "batch" && decoded.kind.value.seq).toBe(2n);
    // Small messages go whole.
    const small = create(SubscribeRequestSchema, { stream: "streams/s", consumerGroup: "g" });
    expect(Buffer.concat(encodeFrameParts(SubscribeRequestSchema, small)).subarray(5)).toEqual(Buffer.from(toBinary(SubscribeRequestSchema, small)));
  });
});

/**
 * The client reads server streams with the native reader when it is built, else with Node's HTTP/2:
 * every test of the data path runs with both, so that they answer alike.
 */
const skipNative = process.env.LCLSTREAM_NATIVE === "0";
const readers = [
  { reader: "Node's HTTP/2", native: false },
  { reader: "the native reader", native: true },
].filter((r) => !(r.native && skipNative));

/** Fails when the native reader should be there (npm ci builds it) and is not; LCLSTREAM_NATIVE=0 skips its tests. */
function requireNative(native: boolean): void {
  if (native && !nativeStreamModule())
    throw new Error("the native module is not built: run `npm run build:native` (or set LCLSTREAM_NATIVE=0 to test without it)");
}

/**
 * The buffer serves the native client's data-path calls on the native module
 * too (native-server.ts), and every other client's on Node's HTTP/2: the
 * data path is tested on each pairing a deployment can have.
 */
const pairings = [
  { pairing: "Node's HTTP/2 at both ends", native: false, nativeServer: false },
  { pairing: "the native module at both ends", native: true, nativeServer: true },
  { pairing: "the native client and Node's HTTP/2 server", native: true, nativeServer: false },
].filter((p) => !(p.native && skipNative));

describe.each(pairings)("the buffer's data path over mTLS, with $pairing", ({ native, nativeServer }) => {
  let pki: TestPki;
  let stateDir: string;
  let buffer: BufferServer;
  const maxMessageBytes = 256 * KiB;
  const alice = (): Client<typeof BufferService> => createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: pki.alice, native }));
  // Publishes carry batches: with the native module, on its thread.
  const carrying = { contextValues: createContextValues().set(publishedBatches, true) };

  beforeAll(async () => {
    requireNative(native);
    pki = await createTestPki();
    stateDir = await mkdtemp(join(tmpdir(), "lclstream-direct-"));
    // A budget for every stream this file creates (each promises its capacity; nothing is allocated up front).
    buffer = await build(
      { stateDir, submitters: ["user/alice"], maxMessageBytes, memoryBudgetBytes: 16 * 1024 * 1024 * KiB, nativeDataPath: nativeServer },
      { tls: pki.server },
    );
  });
  afterAll(async () => {
    await buffer?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  /**
   * One call made with raw HTTP/2: `body` as the request bytes; the status
   * the server answers. A refusal before any response message must be a
   * well-formed Trailers-Only response: one HEADERS frame with the status and
   * END_STREAM, no DATA frame, no separate trailers (grpc-go and grpc-python
   * read anything else as a stream closed without a status).
   */
  async function rawCall(method: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<ConnectError | undefined> {
    const session = http2.connect(buffer.url, { ca: pki.alice.caPem, cert: pki.alice.certPem, key: pki.alice.keyPem });
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": `/lclstream.buffer.v1.BufferService/${method}`,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      const status = new Headers();
      const keep = (h: http2.IncomingHttpHeaders) => Object.entries(h).forEach(([k, v]) => !k.startsWith(":") && status.set(k, String(v)));
      let headersEndedStream = false;
      let dataChunks = 0;
      let trailers = 0;
      stream.on("response", (h, flags: number) => {
        keep(h);
        headersEndedStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      });
      stream.on("trailers", (h) => {
        trailers++;
        keep(h);
      });
      stream.on("data", () => dataChunks++);
      stream.end(body);
      await new Promise((resolve) => stream.once("close", resolve));
      expect(status.get("grpc-status"), "the server answers with a gRPC status").not.toBeNull();
      expect({ headersEndedStream, dataChunks, trailers }, "a Trailers-Only response").toEqual({ headersEndedStream: true, dataChunks: 0, trailers: 0 });
      return findTrailerError(status);
    } finally {
      session.close();
    }
  }

  it("answers a malformed, an oversized and a compressed message with the right code, and keeps serving", async () => {
    const malformed = await rawCall("Subscribe", Buffer.concat([frameHeader(3), Buffer.from([0xff, 0xff, 0xff])]));
    expect([malformed?.code, errorInfo(malformed!)?.reason]).toEqual([Code.InvalidArgument, "MALFORMED_MESSAGE"]);
    const oversized = await rawCall("Publish", frameHeader(maxMessageBytes + 1));
    expect([oversized?.code, errorInfo(oversized!)?.reason]).toEqual([Code.ResourceExhausted, "MESSAGE_TOO_LARGE"]);
    expect(oversized?.rawMessage).toContain(String(maxMessageBytes));
    const compressed = frameHeader(0);
    compressed[0] = 1;
    expect((await rawCall("Subscribe", compressed))?.code).toBe(Code.Internal);
    expect((await rawCall("Subscribe", frameHeader(0), { "grpc-encoding": "gzip" }))?.code).toBe(Code.Unimplemented);
    const truncated = await rawCall("Publish", frameHeader(10).subarray(0, 4));
    expect(truncated?.code).toBe(Code.InvalidArgument);
    // Still serving: a real call works.
    const { stream } = await alice().createStream({ stream: {} });
    expect((await alice().listStreams({})).streams.map((s) => s.name)).toContain(stream!.name);
  });

  it("sends a batch too large for the client's limit as RESOURCE_EXHAUSTED naming the limit", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: {} });
    await alice().publish(publishMessages(stream!.name, publishToken, 0, 0, 1, { payloadBytes: 100 * KiB }), carrying);
    const small = createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: pki.alice, maxMessageBytes: 64 * KiB, native }));
    const error = ConnectError.from(await consume(small, stream!.name, "default").catch((e: unknown) => e));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toContain(String(64 * KiB));
  });

  it("publishes more than the write-ahead and the windows hold, every batch intact and in order", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: {} });
    // 40 batches of 200 KiB: 8 MiB, past the 4 MiB write-ahead and the 8 MiB window's first fill.
    const count = 40;
    const payloadBytes = 200 * KiB;
    const published = await alice().publish(publishMessages(stream!.name, publishToken, 0, 0, count, { payloadBytes, done: true }), carrying);
    expect(published.acceptedBatches).toBe(BigInt(count));
    const got = await consume(alice(), stream!.name, "default");
    expect(got.seqs).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    const bytesOf = (batch: EventBatch) => (batch.payload.value as { data: Uint8Array }).data;
    for (const batch of got.batches)
      expect(Buffer.from(bytesOf(batch)).equals(bytesOf(makeBatch(stream!.name, 0, Number(batch.seq), 4, payloadBytes)))).toBe(true);
  });

  it("carries messages of every size, small ones between large ones and several in a frame, every byte in order", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: {} });
    // Sizes about HTTP/2's 16 KiB frames, the native module's 64 KiB pieces (sent from where the
    // sender holds them) and its 1 MiB frames (each spans several of these messages).
    const sizes = [0, 1, 16_375, 16_384, 16_385, 65_535, 65_536, 65_537, 9, 200 * KiB, 5, 250 * KiB, 250 * KiB, 3, 100 * KiB];
    const payloads = [...sizes, ...Array<number>(8).fill(250 * KiB), 70 * KiB].map((n) => randomBytes(n));
    async function* messages() {
      yield { kind: { case: "open" as const, value: { stream: stream!.name, producerRank: 0, publishToken } } };
      for (const [i, data] of payloads.entries()) {
        const batch = makeBatch(stream!.name, 0, i, 1, 0);
        (batch.payload.value as { data: Uint8Array }).data = data;
        yield { kind: { case: "batch" as const, value: batch } };
      }
      yield { kind: { case: "done" as const, value: { batchCount: BigInt(payloads.length), eventCount: BigInt(payloads.length) } } };
    }
    expect((await alice().publish(messages(), carrying)).acceptedBatches).toBe(BigInt(payloads.length));
    const got = await consume(alice(), stream!.name, "default");
    const digest = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
    const bytesOf = (batch: EventBatch) => (batch.payload.value as { data: Uint8Array }).data;
    expect(got.batches.map((b) => digest(bytesOf(b)))).toEqual(payloads.map(digest));
  });

  it("answers a publish refused mid-stream with the server's code and reason, and lets the server see a publisher that cancels", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: {} });
    // Refused at `open` while batches keep coming: the call ends with the refusal, not a hang or a reset.
    const refused = alice().publish(publishMessages(stream!.name, "lclsp1.wrong", 0, 0, 200, { payloadBytes: 64 * KiB }), carrying);
    expect(await codeAndReason(refused)).toEqual({ code: Code.PermissionDenied, reason: "PUBLISH_TOKEN_REFUSED" });
    // A batch over the server's limit: RESOURCE_EXHAUSTED naming it.
    const oversized = alice().publish(publishMessages(stream!.name, publishToken, 0, 0, 1, { payloadBytes: maxMessageBytes + KiB }), carrying);
    const error = ConnectError.from(await oversized.catch((e: unknown) => e));
    expect([error.code, errorInfo(error)?.reason]).toEqual([Code.ResourceExhausted, "MESSAGE_TOO_LARGE"]);
    // Cancelled while its generator waits: CANCELED here, and the buffer counts the rank gone.
    const abort = new AbortController();
    let sent = 0;
    async function* slow() {
      for await (const m of publishMessages(stream!.name, publishToken, 0, 0, 3)) {
        yield m;
        if (m.kind?.case === "batch" && ++sent === 3) await new Promise((r) => setTimeout(r, 60_000));
      }
    }
    const cancelled = alice().publish(slow(), { ...carrying, signal: abort.signal });
    const connected = async () => (await alice().getStream({ name: stream!.name })).stream!.metrics!.producers[0]?.connected;
    for (let i = 0; i < 100 && (await connected()) !== true; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await connected()).toBe(true);
    abort.abort();
    expect((await codeAndReason(cancelled)).code).toBe(Code.Canceled);
    for (let i = 0; i < 100 && (await connected()) !== false; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await connected()).toBe(false);
  });

  it("carries the server's ErrorInfo to the client, and a deadline ends a quiet subscription", async () => {
    const { stream } = await alice().createStream({ stream: {} });
    expect(await codeAndReason(consume(alice(), stream!.name, "nope"))).toEqual({ code: Code.InvalidArgument, reason: "UNKNOWN_GROUP" });
    const quiet = (async () => {
      for await (const _ of alice().subscribe({ stream: stream!.name, consumerGroup: "default" }, { timeoutMs: 300 }));
    })();
    expect((await codeAndReason(quiet)).code).toBe(Code.DeadlineExceeded);
  });

  it("lets the server see a consumer that cancels: it is gone from the group", async () => {
    const { stream } = await alice().createStream({ stream: {} });
    const abort = new AbortController();
    const subscription = (async () => {
      for await (const r of alice().subscribe({ stream: stream!.name, consumerGroup: "default" }, { signal: abort.signal }))
        if (r.kind.case === "started") abort.abort();
    })();
    expect((await codeAndReason(subscription)).code).toBe(Code.Canceled);
    const consumers = async () => (await alice().getStream({ name: stream!.name })).stream!.metrics!.groups[0]!.consumers;
    for (let i = 0; i < 50 && (await consumers()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await consumers()).toBe(0);
  });

  it("makes Ack a unary call on the direct path: counts, repeats, refusals with ErrorInfo, a deadline", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: {} });
    await alice().publish(publishMessages(stream!.name, publishToken, 0, 0, 2), carrying);
    const abort = new AbortController();
    let consumerId = "";
    const subscription = (async () => {
      for await (const r of alice().subscribe({ stream: stream!.name, consumerGroup: "default" }, { signal: abort.signal })) {
        if (r.kind.case === "started") consumerId = r.kind.value.consumerId;
        if (r.seq === 2n) break;
      }
    })();
    await subscription;
    const ack = (seqs: bigint[], timeoutMs?: number) => alice().ack({ stream: stream!.name, consumerGroup: "default", consumerId, seqs }, { timeoutMs });
    expect((await ack([1n, 2n])).ackedCount).toBe(2n);
    expect((await ack([2n])).ackedCount).toBe(0n);
    expect(await codeAndReason(ack([7n]))).toEqual({ code: Code.InvalidArgument, reason: "UNKNOWN_SEQ" });
    expect(await codeAndReason(alice().ack({ stream: "streams/none", consumerGroup: "default", seqs: [1n] }))).toMatchObject({ code: Code.NotFound });
    expect((await ack([1n], 5_000)).ackedCount).toBe(0n);
    // Nothing to acknowledge, seq 0 (never delivered) and a stranger's id are refused, each saying what is wrong.
    expect(await codeAndReason(ack([]))).toEqual({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT" });
    expect(await codeAndReason(ack([0n]))).toEqual({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT" });
    const stranger = alice().ack({ stream: stream!.name, consumerGroup: "default", consumerId: "0123456789abcdef", seqs: [1n] });
    expect(await codeAndReason(stranger)).toEqual({ code: Code.NotFound, reason: "UNKNOWN_CONSUMER" });
    abort.abort();
  });

  it("reuses memory across responses only for a caller that borrows them, whose bytes hold until it takes the next", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: { consumerGroups: [{ name: "borrowing" }, { name: "owning" }] } });
    // 100 KiB batches arrive in several HTTP/2 frames (a window of 64 KiB paces them), so each is gathered.
    const count = 12;
    await alice().publish(publishMessages(stream!.name, publishToken, 0, 0, count, { payloadBytes: 100 * KiB }), carrying);
    const bytesOf = (batch: EventBatch) => (batch.payload.value as { data: Uint8Array }).data;
    const intact = (batch: EventBatch) => Buffer.from(bytesOf(batch)).equals(bytesOf(makeBatch(stream!.name, 0, Number(batch.seq), 4, 100 * KiB)));
    const read = async (group: string, contextValues?: ContextValues) => {
      const client = createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: pki.alice, http2WindowBytes: 65_535, native }));
      const batches: EventBatch[] = [];
      const intactOnArrival: boolean[] = [];
      for await (const r of client.subscribe({ stream: stream!.name, consumerGroup: group }, { contextValues })) {
        if (r.kind.case !== "batch") continue;
        intactOnArrival.push(intact(r.kind.value));
        batches.push(r.kind.value);
        if (batches.length === count) break;
      }
      return { intactOnArrival, intactLater: batches.map(intact), memories: new Set(batches.map((b) => bytesOf(b).buffer)).size };
    };
    const borrowed = await read("borrowing", createContextValues().set(borrowedResponses, true));
    expect(borrowed.intactOnArrival).toEqual(Array(count).fill(true));
    // Kept past the next response, a borrowed batch's bytes may be a newer one's: they share memory
    // (Node's HTTP/2 path gathers every response into one; the native reader into a few slots in turn).
    expect(borrowed.intactLater.filter((ok) => !ok).length).toBeGreaterThan(0);
    expect(borrowed.memories).toBeLessThanOrEqual(4);
    const owned = await read("owning");
    expect(owned).toEqual({ intactOnArrival: Array(count).fill(true), intactLater: Array(count).fill(true), memories: count });
  });

  it("refuses a server whose certificate names another host, and a client certificate from another CA, as UNAVAILABLE", async () => {
    const { stream } = await alice().createStream({ stream: {} });
    const subscribeAs = (options: Partial<Parameters<typeof createMeshTransport>[0]>) =>
      consume(createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: pki.alice, native, ...options })), stream!.name, "default");
    const elsewhere = ConnectError.from(await subscribeAs({ serverName: "elsewhere.test" }).catch((e: unknown) => e));
    expect(elsewhere.code).toBe(Code.Unavailable);
    expect(elsewhere.rawMessage).toMatch(/did not accept the server's certificate \(.*(altnames|hostname mismatch).*\): check the server's address/);
    const stranger = ConnectError.from(await subscribeAs({ tls: pki.stranger }).catch((e: unknown) => e));
    expect(stranger.code).toBe(Code.Unavailable);
    expect(stranger.rawMessage).toMatch(/refused this client's certificate: .*enroll/);
  });

  it("ends a subscription as UNAVAILABLE, saying why, when its buffer shuts down", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-direct-down-"));
    const doomed = await build({ stateDir: dir, submitters: ["user/alice"], nativeDataPath: nativeServer }, { tls: pki.server });
    try {
      const client = createClient(BufferService, createMeshTransport({ baseUrl: doomed.url, tls: pki.alice, native }));
      const { stream, publishToken } = await client.createStream({ stream: {} });
      await client.publish(publishMessages(stream!.name, publishToken, 0, 0, 2), carrying);
      const seqs: bigint[] = [];
      const subscription = (async () => {
        for await (const r of client.subscribe({ stream: stream!.name, consumerGroup: "default" }))
          if (r.kind.case === "batch" && seqs.push(r.seq) === 2) void doomed.close();
      })();
      const error = ConnectError.from(await subscription.catch((e: unknown) => e));
      expect(seqs).toEqual([1n, 2n]);
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage.length).toBeGreaterThan(10);
    } finally {
      await doomed.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("leaves gRPC-Web to connect: a browser-style client subscribes to the same stream", async () => {
    const { stream, publishToken } = await alice().createStream({ stream: {} });
    await alice().publish(publishMessages(stream!.name, publishToken, 0, 0, 3, { done: true }));
    const web = createClient(
      BufferService,
      createGrpcWebTransport({ baseUrl: buffer.url, httpVersion: "2", nodeOptions: { ca: pki.alice.caPem, cert: pki.alice.certPem, key: pki.alice.keyPem } }),
    );
    const got = await consume(web, stream!.name, "default", { ack: true });
    expect(got.seqs).toEqual([1, 2, 3]);
    expect(got.end?.batchCount).toBe(3n);
    expect(got.batches[1]).toEqual(makeBatch(stream!.name, 0, 1));
  });
});

describe("writing ahead on the direct path", () => {
  // 32 KiB batches: past Node's 16 KiB "full" mark each, so a writer that waited on every one would hold one window's worth.
  const payloadBytes = 32 * KiB;
  const count = 200; // 6.4 MiB: more than the write-ahead and one HTTP/2 window together
  const framedBytes = (m: Uint8Array[]) => m.reduce((n, p) => n + p.byteLength, 0);
  let pki: TestPki;
  let server: LclstreamServer;
  // Messages taken from the stream's source so far (the one being written included).
  let yielded = 0;
  let pulled = 0;
  let release!: () => void;
  let released: Promise<void>;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      // One HTTP/2 window of 64 KiB, so what is sent beyond it is the writer's write-ahead.
      http2WindowBytes: 65_535,
      services: [
        {
          ...serve(BufferService, {
            async *subscribe() {
              for (yielded = 1; yielded <= count; yielded++)
                yield { seq: BigInt(yielded), kind: { case: "batch", value: makeBatch("streams/s", 0, yielded, 1, payloadBytes) } };
            },
            async publish(requests) {
              await released; // reads nothing until the test says so
              let n = 0;
              for await (const _ of requests) n++;
              return { acceptedBatches: BigInt(n) };
            },
          }),
          direct: ["Publish", "Subscribe"],
        },
      ],
    });
  });
  afterAll(() => server?.close());

  /** Polls `value` until it has not changed for 300 ms. */
  async function settled(value: () => number): Promise<number> {
    let last = -1;
    for (let still = 0; still < 6; await new Promise((r) => setTimeout(r, 50))) still = value() === last ? still + 1 : ((last = value()), 0);
    return last;
  }

  it("sends a server stream's messages ahead of a reader that has stopped, up to the write-ahead bound", async () => {
    const messageBytes = framedBytes(
      encodeFrameParts(
        SubscribeResponseSchema,
        create(SubscribeResponseSchema, { seq: 1n, kind: { case: "batch", value: makeBatch("streams/s", 0, 0, 1, payloadBytes) } }),
      ),
    );
    const { session, call } = await bareSubscribe(server.url, pki.alice, "streams/s", "g");
    try {
      call.pause(); // the client's 64 KiB window fills; the rest waits in the server
      const ahead = (await settled(() => yielded)) * messageBytes;
      expect(ahead, "written ahead of the reader").toBeGreaterThan(writeAheadBytes);
      expect(ahead, "and no further than the bound, one window and one message").toBeLessThanOrEqual(writeAheadBytes + 2 * 65_535 + messageBytes);
      // Everything still arrives, in order, once the reader reads.
      const seqs: bigint[] = [];
      onResponses(call, (r) => seqs.push(r.seq));
      call.resume();
      await new Promise((resolve) => call.once("end", resolve));
      expect(seqs).toEqual(Array.from({ length: count }, (_, i) => BigInt(i + 1)));
    } finally {
      session.close();
    }
  });

  it.skipIf(skipNative)("lets the native reader hold no more than its window and two messages for a caller that has stopped taking them", async () => {
    requireNative(true);
    const messageBytes = framedBytes(
      encodeFrameParts(
        SubscribeResponseSchema,
        create(SubscribeResponseSchema, { seq: 1n, kind: { case: "batch", value: makeBatch("streams/s", 0, 0, 1, payloadBytes) } }),
      ),
    );
    const client = createClient(BufferService, createMeshTransport({ baseUrl: server.url, tls: pki.alice, http2WindowBytes: 65_535, native: true }));
    const responses = client.subscribe({ stream: "streams/s", consumerGroup: "g" })[Symbol.asyncIterator]();
    const seqs = [(await responses.next()).value.seq as bigint];
    // Stopped: the server writes ahead up to its bound, the reader holds a window and two messages, no more.
    const ahead = (await settled(() => yielded)) * messageBytes;
    expect(ahead, "written ahead of the reader").toBeGreaterThan(writeAheadBytes);
    expect(ahead, "and no further than the bound, the windows and the messages held").toBeLessThanOrEqual(writeAheadBytes + 2 * 65_535 + 3 * messageBytes);
    for (let r = await responses.next(); !r.done; r = await responses.next()) seqs.push(r.value.seq);
    expect(seqs).toEqual(Array.from({ length: count }, (_, i) => BigInt(i + 1)));
  });

  it.each(readers)("sends a client stream's messages ahead of a server that has stopped reading, up to the bound, through $reader", async ({ native }) => {
    requireNative(native);
    released = new Promise((resolve) => (release = resolve));
    const messageBytes = framedBytes(
      encodeFrameParts(
        WirePublishRequestSchema,
        create(WirePublishRequestSchema, { kind: { case: "batch", value: toBinary(EventBatchSchema, makeBatch("streams/s", 0, 0, 1, payloadBytes)) } }),
      ),
    );
    async function* requests() {
      for (pulled = 1; pulled <= count; pulled++) yield { kind: { case: "batch" as const, value: makeBatch("streams/s", 0, pulled, 1, payloadBytes) } };
    }
    const client = createClient(BufferService, createMeshTransport({ baseUrl: server.url, tls: pki.alice, native }));
    const call = client.publish(requests(), { contextValues: createContextValues().set(publishedBatches, true) });
    const ahead = (await settled(() => pulled)) * messageBytes;
    expect(ahead, "written ahead of the server").toBeGreaterThan(writeAheadBytes);
    // The server's 64 KiB windows (stream and connection, as it sets them) bound what the network holds.
    expect(ahead, "and no further than the bound, the windows and one message").toBeLessThanOrEqual(writeAheadBytes + 3 * 65_535 + messageBytes);
    release();
    expect((await call).acceptedBatches).toBe(BigInt(count));
  });
});
