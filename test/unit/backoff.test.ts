/** The retry schedule every reconnecting loop shares (services/common/backoff.ts). */
import { describe, expect, it } from "vitest";
import { backoffMs, sleep } from "../../services/common/backoff.js";

describe("backoff", () => {
  it("doubles from the first wait up to the cap, and stays there", () => {
    expect([0, 1, 2, 3, 6, 7, 100].map((a) => backoffMs(a))).toEqual([100, 200, 400, 800, 5000, 5000, 5000]);
    expect([0, 1, 5, 6].map((a) => backoffMs(a, 1000, 30_000))).toEqual([1000, 2000, 30_000, 30_000]);
  });

  it("sleeps until the time is up, or the signal aborts", async () => {
    const abort = new AbortController();
    const started = performance.now();
    const waiting = sleep(10_000, abort.signal);
    abort.abort();
    await waiting;
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
