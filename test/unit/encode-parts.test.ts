/** encodeParts: a batch's large column arrays, deep inside it, go by reference, and the bytes decode to the same batch. */
import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ArraySchema, ColumnsSchema, DataType, EventBatchSchema } from "../../gen/lclstream/data/v1/data_pb.js";
import { contiguous } from "../../services/common/byte-parts.js";
import { encodeParts } from "../../services/common/grpc-frames.js";

const column = (bytes: number, fill: number) =>
  create(ArraySchema, { dtype: DataType.UINT16, shape: [1n, BigInt(bytes / 2)], data: new Uint8Array(bytes).fill(fill) });

describe("encodeParts", () => {
  it("appends the large arrays of a batch's columns by reference, and decodes to the same batch", () => {
    const frames = column(4 << 20, 7);
    const small = column(64, 3);
    const batch = create(EventBatchSchema, {
      stream: "streams/s",
      seq: 9n,
      producerRank: 2,
      eventIndices: [4n],
      payload: { case: "columns", value: create(ColumnsSchema, { fields: { frames, tiny: small, pulses: column(64 << 10, 1) } }) },
    });
    const parts = encodeParts(EventBatchSchema, batch);
    // The very arrays, not copies of them; the small one inside the generated encoding.
    expect(parts.filter((p) => p === frames.data)).toHaveLength(1);
    expect(parts.filter((p) => p.byteLength === 64 << 10)).toHaveLength(1);
    expect(parts.some((p) => p === small.data)).toBe(false);
    const decoded = fromBinary(EventBatchSchema, contiguous(parts));
    expect(decoded).toEqual(fromBinary(EventBatchSchema, toBinary(EventBatchSchema, batch)));
    // The message it was given is left as it was.
    expect(batch.payload.case === "columns" && Object.keys(batch.payload.value.fields)).toEqual(["frames", "tiny", "pulses"]);
  });

  it("is the generated encoding itself when nothing is large", () => {
    const batch = create(EventBatchSchema, { seq: 1n, payload: { case: "columns", value: create(ColumnsSchema, { fields: { tiny: column(64, 3) } }) } });
    expect(encodeParts(EventBatchSchema, batch)).toEqual([toBinary(EventBatchSchema, batch)]);
  });
});
