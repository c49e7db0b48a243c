/**
 * BufferStream (services/buffer/buffer-stream.ts) against a reference model,
 * over random sequences of publish, subscribe, ack, consumer loss, ack
 * timeout, replay and end of stream. After every step the stream must agree
 * with the model; at the end every reliable group must drain to its end of
 * stream with every seq acknowledged and the published totals. Each batch's
 * memory is leased (as on the native data path): it must be given back once,
 * only when the stream no longer holds it and no wire still sends it, and
 * then at once.
 */
import { ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BufferStream, type Consumer, type GroupConfig, type Totals } from "../../services/buffer/buffer-stream.js";
import { ByteParts, releasable } from "../../services/common/byte-parts.js";
import { errorInfo } from "../../services/common/errors.js";

const ackTimeoutMs = 100;

type Op =
  | { k: "publish"; rank: number; size: number; events: number; variant: "new" | "duplicate" | "oversize" }
  | { k: "subscribe"; group: number; maxInFlight: number }
  | { k: "replay"; group: number; startSeq: number }
  | { k: "lose"; consumer: number }
  | { k: "ack"; consumer: number; count: number; bogus: boolean }
  | { k: "expire" }
  | { k: "done"; rank: number; wrong: boolean };

const setup = fc.record({
  capacity: fc.integer({ min: 50, max: 400 }),
  retention: fc.integer({ min: 0, max: 300 }),
  producers: fc.integer({ min: 1, max: 3 }),
  // A byte limit of 0 leaves the batch count alone as the limit; batches are 1-120 bytes.
  reliable: fc.array(fc.record({ maxInFlight: fc.integer({ min: 1, max: 4 }), maxInFlightBytes: fc.constantFrom(0, 0, 60, 200), timeout: fc.boolean() }), {
    minLength: 0,
    maxLength: 2,
  }),
  latest: fc.boolean(),
});

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("publish" as const),
      rank: fc.nat(2),
      size: fc.integer({ min: 1, max: 120 }),
      events: fc.integer({ min: 1, max: 5 }),
      variant: fc.constantFrom("new", "new", "new", "duplicate", "oversize"),
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("subscribe" as const), group: fc.nat(2), maxInFlight: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("replay" as const), group: fc.nat(2), startSeq: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("lose" as const), consumer: fc.nat(7) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant("ack" as const), consumer: fc.nat(7), count: fc.integer({ min: 1, max: 4 }), bogus: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("expire" as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("done" as const), rank: fc.nat(2), wrong: fc.boolean() }) },
);

/** A consumer as the model sees it: what it holds unacknowledged. */
interface ModelConsumer {
  real: Consumer;
  group: number;
  maxInFlight: number;
  /** Its byte limit: it takes a batch only while it holds fewer bytes, or nothing. */
  maxInFlightBytes: number;
  held: number[];
  lastSeq: number;
  ended: boolean;
  /** How often it was told that its group has every batch delivered. */
  caughtUp: number;
}

/** The ErrorInfo reason of a refusal. */
function reasonOf(error: unknown): string | undefined {
  return error instanceof ConnectError ? errorInfo(error)?.reason : undefined;
}

function expectRefusal(fn: () => unknown, expected: string) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(reasonOf(caught), `expected a ${expected} refusal`).toBe(expected);
}

type Setup = typeof setup extends fc.Arbitrary<infer T> ? T : never;

async function runSequence(s: Setup, ops: Op[]) {
  const groups: GroupConfig[] = [
    ...s.reliable.map((g, i) => ({
      name: `r${i}`,
      mode: "reliable" as const,
      maxInFlight: g.maxInFlight,
      maxInFlightBytes: g.maxInFlightBytes,
      ackTimeoutMs: g.timeout ? ackTimeoutMs : 0,
    })),
    ...(s.latest ? [{ name: "view", mode: "latest" as const, maxInFlight: 1, ackTimeoutMs: 0 }] : []),
  ];
  const stream = new BufferStream({ id: "model", capacityBytes: s.capacity, retentionBytes: s.retention, producerCount: s.producers, groups });
  const reliable = groups.map((g, i) => (g.mode === "reliable" ? i : -1)).filter((i) => i >= 0);

  // The model.
  const sizes = new Map<number, number>();
  const ranks = Array.from({ length: s.producers }, () => ({ nextSeq: 0n, batches: 0, events: 0, done: false }));
  const acked = groups.map(() => new Set<number>());
  const delivered = groups.map(() => new Set<number>());
  let retained: number[] = [];
  let nextSeq = 1;
  const consumers: ModelConsumer[] = [];
  const live = () => consumers.filter((c) => !c.ended);
  // Memory: what was given back, and the deliveries a wire is still sending (given back at the next step).
  const released = new Set<number>();
  const inWire: { seq: number; sent: () => void }[] = [];
  const sendWire = () => {
    for (const d of inWire.splice(0)) d.sent();
  };

  const fullyAcked = (seq: number) => reliable.every((g) => acked[g]!.has(seq));
  const bufferedBytes = () => [...sizes].filter(([seq]) => !fullyAcked(seq)).reduce((sum, [, size]) => sum + size, 0);
  const retainedBytes = () => retained.reduce((sum, seq) => sum + sizes.get(seq)!, 0);
  const held = (seq: number) => sizes.has(seq) && (!fullyAcked(seq) || retained.includes(seq));
  const freeRetained = () => {
    while (retainedBytes() > s.retention && retained.length) retained.shift();
  };
  const totals = (): Totals => ({
    batchCount: nextSeq - 1,
    eventCount: ranks.reduce((sum, r) => sum + r.events, 0),
    payloadBytes: [...sizes.values()].reduce((a, b) => a + b, 0),
    producers: ranks.map((r, rank) => ({ rank, batchCount: r.batches, eventCount: r.events, skippedEventCount: 0 })),
  });

  const ackInModel = (group: number, seq: number) => {
    if (acked[group]!.has(seq)) return;
    acked[group]!.add(seq);
    for (const c of consumers) if (c.group === group) c.held = c.held.filter((h) => h !== seq);
    if (fullyAcked(seq)) retained.push(seq);
  };

  /** Takes what the stream handed out and checks each delivery against the model. */
  const receive = () => {
    const told: ModelConsumer[] = [];
    for (const c of consumers) {
      for (const d of c.real.outbox.takeAll()) {
        expect(c.ended, "nothing after the end of stream").toBe(false);
        if (d.kind === "end") {
          expect(d.totals).toEqual(totals());
          expect(ranks.every((r) => r.done)).toBe(true);
          if (groups[c.group]!.mode === "reliable") expect(acked[c.group]!.size, "end only after every seq is acknowledged").toBe(nextSeq - 1);
          c.ended = true;
          continue;
        }
        if (d.kind === "caughtUp") {
          told.push(c); // checked once every consumer's deliveries of this round are read
          continue;
        }
        const seq = d.entry.seq;
        expect(sizes.get(seq), `seq ${seq} was published with its size`).toBe(d.entry.bytes.byteLength);
        expect(released.has(seq), `seq ${seq} handed out after its memory was given back`).toBe(false);
        expect(d.bytes.parts[0]!.buffer, "a delivery lends the entry's own memory").toBe(d.entry.bytes.parts[0]!.buffer);
        inWire.push({ seq, sent: d.bytes.onSent! });
        if (groups[c.group]!.mode === "latest") {
          expect(seq, "a latest-only consumer only moves forward").toBeGreaterThan(c.lastSeq);
          c.lastSeq = seq;
          continue;
        }
        expect(acked[c.group]!.has(seq), `seq ${seq} delivered again to ${groups[c.group]!.name} after it was acknowledged`).toBe(false);
        if (d.redelivery) expect(delivered[c.group]!.has(seq), `seq ${seq} redelivered before it was ever delivered`).toBe(true);
        else expect(delivered[c.group]!.has(seq), `seq ${seq} delivered twice as new`).toBe(false);
        expect(
          consumers.some((o) => o.group === c.group && o.held.includes(seq)),
          `seq ${seq} held by two consumers`,
        ).toBe(false);
        delivered[c.group]!.add(seq);
        const heldBytes = c.held.reduce((n, h) => n + sizes.get(h)!, 0);
        expect(c.held.length === 0 || heldBytes < c.maxInFlightBytes, `seq ${seq} handed over with ${heldBytes} bytes held`).toBe(true);
        c.held.push(seq);
        expect(c.held.length).toBeLessThanOrEqual(c.maxInFlight);
      }
    }
    for (const c of told) {
      // Only once everything is out and something is still unacknowledged: then the end follows the acks.
      expect(groups[c.group]!.mode).toBe("reliable");
      expect(
        ranks.every((r) => r.done),
        "caught up only when the stream is complete",
      ).toBe(true);
      expect(delivered[c.group]!.size, "caught up only when every seq was delivered").toBe(nextSeq - 1);
      expect(acked[c.group]!.size, "caught up while something is unacknowledged").toBeLessThan(nextSeq - 1);
      c.caughtUp++;
    }
  };

  const check = () => {
    receive();
    expect(stream.bufferedBytes).toBe(bufferedBytes());
    expect(stream.retainedBytes).toBe(retainedBytes());
    expect(stream.retainedBytes).toBeLessThanOrEqual(s.retention);
    expect([...stream.entries.keys()].sort((a, b) => a - b)).toEqual([...sizes.keys()].filter(held));
    for (const c of live().filter((c) => groups[c.group]!.mode === "reliable"))
      expect([...c.real.heldSeqs].sort((a, b) => a - b)).toEqual([...c.held].sort((a, b) => a - b));
    // Given back exactly when no one holds it: not the stream, not a wire, and not as the newest (latest-only groups read it).
    for (let seq = 1; seq < nextSeq; seq++) {
      const heldBy = stream.entries.has(seq) || seq === nextSeq - 1 || inWire.some((w) => w.seq === seq);
      expect(released.has(seq), `seq ${seq}'s memory ${heldBy ? "given back while held" : "kept after everyone let go"}`).toBe(!heldBy);
    }
  };

  const publish = async (rank: number, size: number, seq: bigint, events: number) => {
    const memory = new ArrayBuffer(size);
    const at = nextSeq;
    releasable(memory, () => {
      expect(released.has(at), `seq ${at}'s memory given back twice`).toBe(false);
      released.add(at);
    });
    return stream.publish(rank, new ByteParts([new Uint8Array(memory)]), { producerRank: rank, seq, eventCount: events }, new AbortController().signal);
  };

  let replayed = false;
  for (const o of ops) {
    sendWire();
    switch (o.k) {
      case "publish": {
        const rank = o.rank % s.producers;
        const r = ranks[rank]!;
        if (o.variant === "oversize") {
          await expect(publish(rank, s.capacity + 1, r.nextSeq, o.events)).rejects.toSatisfy((e) => reasonOf(e) === "BATCH_TOO_LARGE");
          break;
        }
        const size = Math.min(o.size, s.capacity);
        const duplicate = o.variant === "duplicate" && r.nextSeq > 0n;
        if (reliable.length && bufferedBytes() + size > s.capacity) {
          // Full: the publisher waits (here until it gives up).
          const abort = new AbortController();
          let settled = false;
          const waiting = stream
            .publish(rank, new ByteParts([new Uint8Array(size)]), { producerRank: rank, seq: r.nextSeq, eventCount: o.events }, abort.signal)
            .finally(() => (settled = true));
          await new Promise((resolve) => setImmediate(resolve));
          expect(settled, "a publish into a full stream waits").toBe(false);
          abort.abort(new Error("gave up"));
          await expect(waiting).rejects.toThrow("gave up");
          break;
        }
        if (duplicate) {
          await expect(publish(rank, size, r.nextSeq - 1n, o.events)).resolves.toBe(false);
          break;
        }
        if (r.done) {
          await expect(publish(rank, size, r.nextSeq, o.events)).rejects.toSatisfy((e) => reasonOf(e) === "PRODUCER_DONE");
          break;
        }
        await expect(publish(rank, size, r.nextSeq, o.events)).resolves.toBe(true);
        sizes.set(nextSeq, size);
        if (!reliable.length) retained.push(nextSeq);
        nextSeq++;
        r.nextSeq++;
        r.batches++;
        r.events += o.events;
        freeRetained();
        break;
      }
      case "subscribe":
      case "replay": {
        const group = o.group % groups.length;
        if (!groups.length) break;
        const startSeq = o.k === "replay" ? o.startSeq : 0;
        if (startSeq && groups[group]!.mode === "reliable") {
          const complete = ranks.every((r) => r.done);
          if (startSeq >= nextSeq && !(complete && startSeq === nextSeq)) {
            expectRefusal(() => stream.subscribe(groups[group]!.name, 0, startSeq), "START_SEQ_AHEAD");
            break;
          }
          const again = [...acked[group]!].filter((seq) => seq >= startSeq);
          if (again.some((seq) => !held(seq))) {
            expectRefusal(() => stream.subscribe(groups[group]!.name, 0, startSeq), "START_SEQ_NOT_RETAINED");
            break;
          }
          for (const seq of again) {
            acked[group]!.delete(seq);
            retained = retained.filter((r) => r !== seq);
          }
          replayed ||= again.length > 0;
        }
        const maxInFlight = o.k === "subscribe" && o.maxInFlight ? o.maxInFlight : groups[group]!.maxInFlight;
        const real = stream.subscribe(groups[group]!.name, o.k === "subscribe" ? o.maxInFlight : 0, startSeq);
        const maxInFlightBytes = groups[group]!.maxInFlightBytes || Number.POSITIVE_INFINITY;
        consumers.push({ real, group, maxInFlight, maxInFlightBytes, held: [], lastSeq: 0, ended: false, caughtUp: 0 });
        break;
      }
      case "lose": {
        const c = live()[o.consumer % Math.max(1, live().length)];
        if (!c) break;
        receive();
        stream.unsubscribe(c.real);
        c.held = [];
        c.ended = true;
        break;
      }
      case "ack": {
        const c = consumers[o.consumer % Math.max(1, consumers.length)];
        if (!c || groups[c.group]!.mode !== "reliable") break;
        const name = groups[c.group]!.name;
        if (o.bogus) {
          // A seq this group never received (late acks of ones it did are fine).
          const never = [...sizes.keys(), nextSeq + 3].find((seq) => !delivered[c.group]!.has(seq) && !acked[c.group]!.has(seq))!;
          expectRefusal(() => stream.ack(name, [never]), "UNKNOWN_SEQ");
          break;
        }
        // Whatever it holds, or (for a lost or timed-out one) what it once received.
        const seqs = c.held.length ? c.held.slice(0, o.count) : [...delivered[c.group]!].slice(0, o.count);
        const fresh = seqs.filter((seq) => !acked[c.group]!.has(seq)).length;
        expect(stream.ack(name, seqs)).toBe(fresh);
        for (const seq of seqs) ackInModel(c.group, seq);
        freeRetained();
        break;
      }
      case "expire": {
        receive();
        vi.advanceTimersByTime(ackTimeoutMs + ackTimeoutMs / 4 + 1);
        for (const c of live()) if (groups[c.group]!.ackTimeoutMs) c.held = [];
        break;
      }
      case "done": {
        const rank = o.rank % s.producers;
        const r = ranks[rank]!;
        if (r.done) break;
        if (o.wrong) {
          expectRefusal(() => stream.done(rank, r.nextSeq + 1n, BigInt(r.events)), "DONE_MISMATCH");
          break;
        }
        stream.done(rank, r.nextSeq, BigInt(r.events));
        r.done = true;
        break;
      }
    }
    check();
    // Publishing never fills past the capacity; only a replay brings retained batches back into the count.
    if (!replayed) expect(stream.bufferedBytes).toBeLessThanOrEqual(s.capacity);
  }

  // The end: every rank finishes, a fresh consumer per group drains what is left.
  ranks.forEach((r, rank) => {
    if (!r.done) stream.done(rank, r.nextSeq, BigInt(r.events));
    r.done = true;
  });
  for (let g = 0; g < groups.length; g++)
    consumers.push({
      real: stream.subscribe(groups[g]!.name, 1000, 0, 1e9),
      group: g,
      maxInFlight: 1000,
      maxInFlightBytes: 1e9,
      held: [],
      lastSeq: 0,
      ended: false,
      caughtUp: 0,
    });
  check();
  // With everything published and handed out, a group still waiting for acks tells its consumers so.
  const waitingForAcks = reliable.filter((g) => acked[g]!.size < nextSeq - 1);
  for (const g of waitingForAcks)
    expect(
      consumers.some((c) => c.group === g && c.caughtUp > 0),
      `group ${groups[g]!.name} told caught up`,
    ).toBe(true);
  for (let round = 0; round < 100 && live().length; round++) {
    sendWire();
    check();
    for (const c of live()) {
      if (!c.held.length) continue;
      const seqs = [...c.held];
      stream.ack(groups[c.group]!.name, seqs);
      for (const seq of seqs) ackInModel(c.group, seq);
      freeRetained();
    }
  }
  check();
  expect(live(), "every consumer reached the end of stream").toEqual([]);
  for (const g of reliable) expect(acked[g]!.size).toBe(nextSeq - 1);
  if (reliable.length) expect(stream.state).toBe("drained");
  stream.close();
}

describe("BufferStream against a model", () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] }));
  afterEach(() => vi.useRealTimers());

  it("agrees with the model over 1,000 random sequences", async () => {
    await fc.assert(
      fc.asyncProperty(setup, fc.array(op, { minLength: 1, maxLength: 40 }), (s, ops) => runSequence(s, ops)),
      { numRuns: 1000 },
    );
  });

  it("gives back what deliveries never sent borrowed: a departed consumer's, and a latest-only reader's replaced ones", async () => {
    const stream = new BufferStream({
      id: "s",
      capacityBytes: 1000,
      retentionBytes: 0,
      producerCount: 1,
      groups: [
        { name: "g", mode: "reliable", maxInFlight: 10, ackTimeoutMs: 0 },
        { name: "view", mode: "latest", maxInFlight: 1, ackTimeoutMs: 0 },
      ],
    });
    const released: number[] = [];
    const publish = (seq: number) => {
      const memory = new ArrayBuffer(10);
      releasable(memory, () => released.push(seq + 1)); // the stream numbers batches from 1
      return stream.publish(0, new ByteParts([new Uint8Array(memory)]), { producerRank: 0, seq: BigInt(seq), eventCount: 1 }, new AbortController().signal);
    };
    const leaving = stream.subscribe("g", 0, 0);
    stream.subscribe("view", 0, 0); // reads nothing: each newer batch replaces the one waiting for it
    for (let seq = 0; seq < 3; seq++) await publish(seq);
    stream.unsubscribe(leaving); // its three deliveries were never taken
    const staying = stream.subscribe("g", 0, 0);
    const deliveries = staying.outbox.takeAll().filter((d) => d.kind === "batch");
    expect(deliveries.map((d) => d.entry.seq)).toEqual([1, 2, 3]);
    for (const d of deliveries) d.bytes.onSent!();
    stream.ack("g", [1, 2, 3]);
    // Seq 3 is the newest, which a latest-only reader may still be handed.
    expect(released.sort()).toEqual([1, 2]);
    stream.close();
  });

  it("keeps the events a rank left out as incomplete, as it said when done, in the totals", () => {
    const stream = new BufferStream({ id: "s", capacityBytes: 100, retentionBytes: 0, producerCount: 2, groups: [] });
    stream.done(0, 0n, 0n, 3n);
    stream.done(1, 0n, 0n);
    expect(stream.totals().producers.map((p) => p.skippedEventCount)).toEqual([3, 0]);
    stream.close();
  });

  it("as shard 1 of 3, takes ranks 1 and 4 under their own numbers and refuses the others", async () => {
    const stream = new BufferStream({ id: "s", capacityBytes: 100, retentionBytes: 0, producerCount: 2, shard: { index: 1, count: 3 }, groups: [] });
    const publish = (rank: number) =>
      stream.publish(rank, new ByteParts([new Uint8Array(4)]), { producerRank: rank, seq: 0n, eventCount: 2 }, new AbortController().signal);
    await expect(publish(4)).resolves.toBe(true);
    for (const rank of [0, 2, 3, 7]) await expect(publish(rank)).rejects.toSatisfy((e) => reasonOf(e) === "RANK_OUT_OF_RANGE");
    expect(() => stream.done(0, 0n, 0n)).toThrow(/ranks r with r % 3 == 1/);
    stream.done(1, 0n, 0n);
    expect(stream.complete).toBe(false);
    stream.done(4, 1n, 2n);
    expect(stream.complete).toBe(true);
    expect(stream.totals().producers.map((p) => [p.rank, p.batchCount, p.eventCount])).toEqual([
      [1, 0, 0],
      [4, 1, 2],
    ]);
    stream.close();
  });
});
