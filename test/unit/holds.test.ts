/** Holds over memory a source reuses: given back once, when the last hold is let go. */
import { describe, expect, it } from "vitest";
import { holdsOver } from "../../services/producer/event.js";

describe("holdsOver", () => {
  it("gives the memory back once, when the last of several holds is let go", () => {
    const given: string[] = [];
    const hold = holdsOver([() => given.push("a"), () => given.push("b")]);
    const [first, second] = [hold(), hold()];
    first();
    first(); // a let-go function works once
    expect(given).toEqual([]);
    second();
    expect(given).toEqual(["a", "b"]);
    hold()();
    expect(given).toEqual(["a", "b"]);
  });

  it("never gives it back when no hold is taken: the garbage collector has it", () => {
    const given: string[] = [];
    holdsOver([() => given.push("a")]);
    expect(given).toEqual([]);
  });
});
