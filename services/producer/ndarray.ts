/**
 * N-dimensional arrays as the producer handles them: a typed array in C
 * order, its dtype and shape; and their conversion to and from the wire's
 * `lclstream.data.v1.Array` (little-endian bytes).
 */
import { DataType } from "../../gen/lclstream/data/v1/data_pb.js";

export type Dtype = "bool" | "int8" | "uint8" | "int16" | "uint16" | "int32" | "uint32" | "int64" | "uint64" | "float32" | "float64";

export const dtypes: readonly Dtype[] = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"];

export type TypedArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

export interface NdArray {
  dtype: Dtype;
  shape: number[];
  data: TypedArray;
}

const constructors = {
  bool: Uint8Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

export const dtypeToProto: Record<Dtype, DataType> = {
  bool: DataType.BOOL,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int16: DataType.INT16,
  uint16: DataType.UINT16,
  int32: DataType.INT32,
  uint32: DataType.UINT32,
  int64: DataType.INT64,
  uint64: DataType.UINT64,
  float32: DataType.FLOAT32,
  float64: DataType.FLOAT64,
};

export const dtypeFromProto = Object.fromEntries(Object.entries(dtypeToProto).map(([k, v]) => [v, k])) as Record<DataType, Dtype>;

export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A zeroed array. */
export function zeros(dtype: Dtype, shape: number[]): NdArray {
  return { dtype, shape, data: new constructors[dtype](size(shape)) };
}

/** A typed array of `dtype` over `bytes` (copied when misaligned). */
export function typedView(dtype: Dtype, bytes: Uint8Array): TypedArray {
  const C = constructors[dtype];
  const width = C.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % width === 0) return new C(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / width);
  // Uint8Array's slice copies (a Buffer's would not: it is a view).
  return new C(Uint8Array.prototype.slice.call(bytes).buffer, 0, bytes.byteLength / width);
}

/** The bytes of an array, little-endian (the machines we run on are). */
export function bytesOf(a: NdArray): Uint8Array {
  return new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
}

/** Elements as numbers (bigints narrowed), for processing steps. */
export function toFloat32(a: NdArray): Float32Array {
  if (a.data instanceof Float32Array) return a.data;
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(a.data[i]);
  return out;
}

/** Writes numbers into an array of `dtype`, clamping to the type's range where it has one. */
export function fromFloat32(values: Float32Array, dtype: Dtype, shape: number[]): NdArray {
  if (dtype === "float32") return { dtype, shape, data: values };
  const out = zeros(dtype, shape);
  if (out.data instanceof BigInt64Array || out.data instanceof BigUint64Array) {
    for (let i = 0; i < values.length; i++) out.data[i] = BigInt(Math.round(values[i]!));
  } else {
    const d = out.data as Exclude<TypedArray, BigInt64Array | BigUint64Array>;
    for (let i = 0; i < values.length; i++) d[i] = values[i]!;
  }
  return out;
}
