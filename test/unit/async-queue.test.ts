/** AsyncQueue (services/common/async-queue.ts): order, close, fail, abort and idle ticks, without sockets. */
import { describe, expect, it } from "vitest";
import { AsyncQueue, idle } from "../../services/common/async-queue.js";

async function take<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

describe("AsyncQueue", () => {
  it("yields what was pushed, in order, before and while a reader waits, and ends after close", async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.push(2);
    const reading = (async () => {
      const got: number[] = [];
      for await (const x of q.drain()) got.push(x);
      return got;
    })();
    await new Promise((r) => setTimeout(r, 5));
    q.push(3);
    q.close();
    expect(await reading).toEqual([1, 2, 3]);
  });

  it("ends at once with the failure, even with items queued", async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.fail(new Error("broken"));
    await expect(take(q.drain(), 5)).rejects.toThrow("broken");
  });

  it("rejects a waiting reader with the signal's reason when it aborts", async () => {
    const q = new AsyncQueue<number>();
    const abort = new AbortController();
    const reading = take(q.drain(abort.signal), 1);
    abort.abort(new Error("gone"));
    await expect(reading).rejects.toThrow("gone");
  });

  it("yields idle after each quiet interval, then the item when it comes", async () => {
    const q = new AsyncQueue<string>();
    setTimeout(() => q.push("a"), 70);
    const got: (string | typeof idle)[] = [];
    for await (const x of q.drain(undefined, 25)) {
      got.push(x);
      if (x === "a") break;
    }
    expect(got.at(-1)).toBe("a");
    expect(got.length).toBeGreaterThanOrEqual(3); // at least two quiet intervals before it
    expect(got.slice(0, -1).every((x) => x === idle)).toBe(true);
  });

  it("takeAll empties the queue and length counts what is left", () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.push(2);
    expect(q.length).toBe(2);
    expect(q.takeAll()).toEqual([1, 2]);
    expect(q.length).toBe(0);
  });
});
