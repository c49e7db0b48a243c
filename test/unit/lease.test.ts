/** A Lease over a received message's memory: when V8 counts it, and when it is given back. */
import { describe, expect, it } from "vitest";
import { ByteParts, Lease, releasable } from "../../services/common/byte-parts.js";

/** A message's memory whose counting and release are recorded in `events`, and a lease over it. */
function leased(events: string[]): { lease: Lease; bytes: ByteParts } {
  const memory = new ArrayBuffer(16);
  releasable(memory, () => events.push("release"), { hold: () => events.push("hold"), unhold: () => events.push("unhold") });
  const bytes = new ByteParts([new Uint8Array(memory)]);
  return { lease: Lease.of(bytes)!, bytes };
}

describe("Lease", () => {
  it("keeps the memory off V8's count while its first holder keeps it, and counts it again before giving it back", () => {
    const events: string[] = [];
    const { lease } = leased(events);
    expect(events).toEqual(["hold"]);
    lease.endFirst();
    expect(events).toEqual(["hold", "unhold", "release"]);
  });

  it("counts the memory again when the first holder lets go while a wire still holds it, and gives it back after the wire", () => {
    const events: string[] = [];
    const { lease, bytes } = leased(events);
    const lent = lease.lend(bytes);
    lease.endFirst();
    // The wire may never say it sent the bytes: then the collector frees them, and must know of them.
    expect(events).toEqual(["hold", "unhold"]);
    lent.onSent!();
    lent.onSent!(); // said twice, counted once
    expect(events).toEqual(["hold", "unhold", "release"]);
  });

  it("gives the memory back once the last wire is done, when the first holder let go before it", () => {
    const events: string[] = [];
    const { lease, bytes } = leased(events);
    const [first, second] = [lease.lend(bytes), lease.lend(bytes)];
    first.onSent!();
    expect(events).toEqual(["hold"]);
    lease.endFirst();
    second.onSent!();
    expect(events).toEqual(["hold", "unhold", "release"]);
  });
});
