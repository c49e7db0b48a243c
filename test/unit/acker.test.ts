/** Acker (services/common/acker.ts): acknowledgements in groups, one call at a time, with a fake send. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Acker } from "../../services/common/acker.js";

describe("Acker", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** `acker` told `window`, as a subscription's started message tells it. */
  const withWindow = (acker: Acker, window: { maxInFlight: number; maxInFlightBytes: bigint }) => (acker.useWindow(window), acker);

  /** A window of `n` batches and no byte limit: groups of half of it. */
  const batches = (n: number) => ({ maxInFlight: n, maxInFlightBytes: 0n });

  /** A send that records its calls and resolves each when told. */
  function fakeSend() {
    const calls: { seqs: bigint[]; resolve: () => void; reject: (e: Error) => void }[] = [];
    const send = (seqs: bigint[]) => new Promise<void>((resolve, reject) => calls.push({ seqs, resolve, reject }));
    return { calls, send };
  }

  it("sends a full group at once, and a partial one after the interval", async () => {
    const { calls, send } = fakeSend();
    const acker = withWindow(new Acker(send, { intervalMs: 20 }), batches(6));
    [1n, 2n, 3n].forEach((s) => acker.add(s));
    expect(calls.map((c) => c.seqs)).toEqual([[1n, 2n, 3n]]);
    calls[0]!.resolve();
    await vi.advanceTimersByTimeAsync(0);
    acker.add(4n);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(20);
    expect(calls.map((c) => c.seqs)).toEqual([[1n, 2n, 3n], [4n]]);
  });

  it("keeps one call out at a time; what came in meanwhile goes next", async () => {
    const { calls, send } = fakeSend();
    const acker = withWindow(new Acker(send, { intervalMs: 20 }), batches(2));
    acker.add(1n);
    acker.add(2n);
    acker.add(3n);
    expect(calls).toHaveLength(1);
    calls[0]!.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => c.seqs)).toEqual([[1n], [2n, 3n]]);
  });

  it("flush sends the rest and waits; a failed call in the background loses nothing flush reports", async () => {
    const { calls, send } = fakeSend();
    const acker = withWindow(new Acker(send, { intervalMs: 1000 }), batches(4));
    acker.add(1n);
    acker.add(2n);
    calls[0]!.reject(new Error("unavailable"));
    await vi.advanceTimersByTimeAsync(0);
    acker.add(3n);
    let flushed = false;
    const flushing = acker.flush().then(() => (flushed = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => c.seqs)).toEqual([[1n, 2n], [3n]]);
    expect(flushed).toBe(false);
    calls[1]!.resolve();
    await flushing;
    expect(flushed).toBe(true);
  });

  it("close stops the timer: what is queued is not sent", async () => {
    const { calls, send } = fakeSend();
    const acker = withWindow(new Acker(send, { intervalMs: 20 }), batches(20));
    acker.add(1n);
    acker.close();
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(0);
  });

  it("sizes groups at half the window, so a consumer with a window of one or two never waits for the interval", async () => {
    for (const [window, group] of [
      [1, 1],
      [2, 1],
      [3, 1],
      [16, 8],
      [32, 16],
    ]) {
      const { calls, send } = fakeSend();
      const acker = withWindow(new Acker(send, { intervalMs: 20 }), batches(window!));
      for (let seq = 1n; seq <= BigInt(group!); seq++) {
        expect(calls, `window ${window}: nothing sent before ${group} seqs`).toHaveLength(0);
        acker.add(seq);
      }
      expect(
        calls.map((c) => c.seqs.length),
        `window ${window}: sent without waiting for the timer`,
      ).toEqual([group]);
      acker.close();
    }
  });

  it("sends a group when it holds half the window's bytes, whatever its count", async () => {
    const { calls, send } = fakeSend();
    const acker = withWindow(new Acker(send, { intervalMs: 20 }), { maxInFlight: 1024, maxInFlightBytes: 1000n });
    acker.add(1n, 300);
    expect(calls).toHaveLength(0);
    acker.add(2n, 200);
    expect(calls.map((c) => c.seqs)).toEqual([[1n, 2n]]);
    calls[0]!.resolve();
    await vi.advanceTimersByTimeAsync(0);
    acker.add(3n, 499);
    expect(calls, "the byte count starts again with each group").toHaveLength(1);
    acker.close();
  });

  it("takes the window from the subscription; from a buffer that names none, the old default of 16 batches", async () => {
    const { calls, send } = fakeSend();
    const acker = new Acker(send, { intervalMs: 20 });
    for (let seq = 1n; seq <= 8n; seq++) acker.add(seq, 1 << 30);
    expect(
      calls.map((c) => c.seqs.length),
      "no byte limit: groups of 8",
    ).toEqual([8]);
    calls[0]!.resolve();
    await vi.advanceTimersByTimeAsync(0);
    acker.useWindow({ maxInFlight: 4, maxInFlightBytes: 0n });
    [9n, 10n].forEach((s) => acker.add(s));
    expect(calls.map((c) => c.seqs.length)).toEqual([8, 2]);
    acker.close();
  });
});
