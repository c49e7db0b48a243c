/** typedView: typed arrays over bytes, viewed where aligned and copied where not, whatever kind of Uint8Array holds them. */
import { describe, expect, it } from "vitest";
import { typedView } from "../../services/producer/ndarray.js";

describe("typedView", () => {
  it("reads float64 values at an unaligned offset of a Buffer (whose slice is a view, not a copy)", () => {
    const values = Float64Array.of(1.5, -2.25, 4294967300);
    const bytes = Buffer.alloc(3 + values.byteLength);
    Buffer.from(values.buffer).copy(bytes, 3);
    expect(Array.from(typedView("float64", bytes.subarray(3)) as Float64Array)).toEqual([1.5, -2.25, 4294967300]);
  });

  it("views aligned bytes without copying", () => {
    const bytes = new Uint8Array(16);
    const view = typedView("uint32", bytes.subarray(8)) as Uint32Array;
    bytes[8] = 7;
    expect(view[0]).toBe(7);
  });
});
