/** Acker (services/common/acker.ts): acknowledgements in groups, one call at a time, with a fake send. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Acker, ackGroupSize } from "../../services/common/acker.js";

describe("Acker", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A send that records its calls and resolves each when told. */
  function fakeSend() {
    const calls: { seqs: bigint[]; resolve: () => void; reject: (e: Error) => void }[] = [];
    const send = (seqs: bigint[]) => new Promise<void>((resolve, reject) => calls.push({ seqs, resolve, reject }));
    return { calls, send };
  }

  it("sends a full group at once, and a partial one after the interval", async () => {
    const { calls, send } = fakeSend();
    const acker = new Acker(send, { groupSize: 3, intervalMs: 20 });
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
    const acker = new Acker(send, { groupSize: 1, intervalMs: 20 });
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
    const acker = new Acker(send, { groupSize: 2, intervalMs: 1000 });
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
    const acker = new Acker(send, { groupSize: 10, intervalMs: 20 });
    acker.add(1n);
    acker.close();
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(0);
  });

  it("sizes groups at half the window, so a consumer with a window of one or two never waits for the interval", async () => {
    expect([1, 2, 3, 16, 32].map(ackGroupSize)).toEqual([1, 1, 1, 8, 16]);
    const { calls, send } = fakeSend();
    const acker = new Acker(send, { groupSize: ackGroupSize(2), intervalMs: 20 });
    acker.add(1n);
    expect(
      calls.map((c) => c.seqs),
      "sent without waiting for the timer",
    ).toEqual([[1n]]);
  });
});
