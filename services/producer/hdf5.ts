/** HDF5 through h5wasm (the HDF5 C library compiled to WebAssembly): loading it, and our dtypes in its terms. */
import type { Dtype } from "./ndarray.js";

type H5 = typeof import("h5wasm/node").default;
let loaded: Promise<H5> | undefined;

/** The h5wasm module, loaded once. */
export function h5(): Promise<H5> {
  loaded ??= import("h5wasm/node").then(async (m) => {
    await m.default.ready;
    return m.default;
  });
  return loaded;
}

/** h5wasm's (struct-module style) type codes of our dtypes, little-endian; bool is stored as uint8 as h5py does. */
export const h5Dtype: Record<Dtype, string> = {
  bool: "<B",
  int8: "<b",
  uint8: "<B",
  int16: "<h",
  uint16: "<H",
  int32: "<i",
  uint32: "<I",
  int64: "<q",
  uint64: "<Q",
  float32: "<f",
  float64: "<d",
};

/** Our dtype for an h5wasm dataset's type metadata, or undefined when we do not stream it. */
export function dtypeOfMetadata(meta: { type: number; size: number; signed: boolean }): Dtype | undefined {
  // h5wasm's H5T classes: 0 integer, 1 float.
  if (meta.type === 1) return meta.size === 4 ? "float32" : meta.size === 8 ? "float64" : undefined;
  if (meta.type === 0) {
    const bits = meta.size * 8;
    return (({ 8: meta.signed ? "int8" : "uint8", 16: meta.signed ? "int16" : "uint16", 32: meta.signed ? "int32" : "uint32", 64: meta.signed ? "int64" : "uint64" }) as Record<number, Dtype>)[bits];
  }
  return undefined;
}
