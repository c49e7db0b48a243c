/** Waiting between retries: one schedule for every loop that reconnects or retries. */

/** The wait before retry `attempt` (0 first): `initialMs` doubled each time, at most `maxMs`. */
export function backoffMs(attempt: number, initialMs = 100, maxMs = 5000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
}

/** Waits `ms`, or less when the signal aborts; never rejects. `unref`: do not hold the process open. */
export function sleep(ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (unref) timer.unref();
    signal?.addEventListener("abort", done, { once: true });
  });
}
