/** The buffer's rate meters: an average over a sliding window, which does not read 0 between two large batches. */
import { describe, expect, it } from "vitest";
import { RateMeters } from "../../services/buffer/rates.js";

describe("rate meters", () => {
  it("average over the window, so batches a few seconds apart do not read 0 in between", () => {
    let now = 0;
    const rates = new RateMeters({ intervalMs: 1_000_000, windowMs: 5000, now: () => now });
    try {
      rates.published("s", 0);
      // An 8 MB batch every 2 s, sampled every second.
      for (let second = 1; second <= 10; second++) {
        now = second * 1000;
        if (second % 2 === 0) rates.published("s", 8e6);
        rates.sample();
        if (second >= 2) expect(rates.get("s").publish, `at ${second} s`).toBeGreaterThan(0);
      }
      // 8 MB every 2 s: 4 MB/s, give or take the one batch a 5 s window may hold more or less.
      expect(rates.get("s").publish).toBeGreaterThanOrEqual(3.2e6);
      expect(rates.get("s").publish).toBeLessThanOrEqual(4.8e6);
      // Nothing more: the rate falls to 0 once the window has passed.
      for (let second = 11; second <= 16; second++) {
        now = second * 1000;
        rates.sample();
      }
      expect(rates.get("s").publish).toBe(0);
      rates.delivered("s", "g", 1000);
      now += 1000;
      rates.sample();
      expect(rates.get("s").groups.get("g")).toBe(1000);
    } finally {
      rates.close();
    }
  });
});
