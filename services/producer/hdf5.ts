/** HDF5 through h5wasm (the HDF5 C library compiled to WebAssembly): loading it, and our dtypes in its terms. */
import { readFile } from "node:fs/promises";
import type { Dtype } from "./ndarray.js";

type H5 = typeof import("h5wasm/node").default;
type Dataset = import("h5wasm").Dataset;

/** The part of h5wasm's compiled module that {@link readRows} calls. */
interface H5Module {
  get_dataset_data(fileId: bigint, path: string, count: bigint[], offset: bigint[], strides: bigint[], ptr: bigint): number;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
}

let loaded: Promise<H5> | undefined;
let compiled: H5Module | undefined;

/** The h5wasm module, loaded once. */
export function h5(): Promise<H5> {
  loaded ??= import("h5wasm/node").then(async (m) => {
    compiled = (await m.default.ready) as unknown as H5Module;
    return m.default;
  });
  return loaded;
}

/** What {@link h5InMemory} adds: the in-memory file system the files live in. */
interface InMemoryFs {
  readFile(path: string): Uint8Array;
  writeFile(path: string, data: Uint8Array): void;
  mkdirTree(path: string): void;
  unlink(path: string): void;
}

/** HDF5's registered ids of the Bitshuffle (with LZ4 or Zstandard inside) and ZFP filters. */
export const bitshuffleFilter = 32008;
export const zfpFilter = 32013;

/** The filter plugins the serializer uses, from h5wasm-plugins (built for h5wasm, loaded as HDF5 loads any plugin). */
const plugins = ["bshuf", "zfp"];

let inMemory: Promise<{ lib: H5; fs: InMemoryFs }> | undefined;

/**
 * h5wasm's other build, whose files live in memory (Emscripten's MEMFS),
 * loaded once: the serializer writes a batch's file there and takes its
 * bytes, with no temporary file. (The Node build, {@link h5}, reads and
 * writes the real file system: what the HDF5 source needs for large files.)
 */
export function h5InMemory(): Promise<{ lib: H5; fs: InMemoryFs }> {
  inMemory ??= import("h5wasm").then(async (m) => {
    const module = (await m.default.ready) as unknown as { FS: InMemoryFs; get_plugin_search_paths(): string[] };
    const pluginDir = module.get_plugin_search_paths()[0]!;
    module.FS.mkdirTree(pluginDir);
    const from = new URL("plugins/", import.meta.resolve("h5wasm-plugins"));
    for (const name of plugins) module.FS.writeFile(`${pluginDir}/libH5Z${name}.so`, await readFile(new URL(`libH5Z${name}.so`, from)));
    return { lib: m.default as unknown as H5, fs: module.FS };
  });
  return inMemory;
}

/**
 * Rows [start, stop) along axis 0 of a numeric dataset, as bytes. The read's
 * status is checked: h5wasm's Dataset.slice ignores it, and hands back
 * whatever the buffer held when a chunk cannot be read (a corrupt or
 * truncated file), which would stream garbage as data.
 */
export function readRows(dataset: Dataset, start: number, stop: number, file: string): Uint8Array {
  const module = compiled!;
  const shape = dataset.shape!;
  const rowElements = shape.slice(1).reduce((a, b) => a * b, 1);
  const bytes = (stop - start) * rowElements * dataset.metadata.size;
  const ptr = module._malloc(Math.max(1, bytes));
  if (ptr === 0) throw new Error(`cannot allocate ${bytes} bytes to read ${dataset.path}`);
  try {
    const count = [BigInt(stop - start), ...shape.slice(1).map(BigInt)];
    const offset = [BigInt(start), ...shape.slice(1).map(() => 0n)];
    const status = module.get_dataset_data(
      dataset.file_id,
      dataset.path,
      count,
      offset,
      count.map(() => 1n),
      BigInt(ptr),
    );
    if (status < 0) throw new Error(`reading events ${start}..${stop - 1} of ${dataset.path} in ${file} failed: the file is corrupt or truncated there`);
    return module.HEAPU8.slice(ptr, ptr + bytes);
  } finally {
    module._free(ptr);
  }
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
    return (
      {
        8: meta.signed ? "int8" : "uint8",
        16: meta.signed ? "int16" : "uint16",
        32: meta.signed ? "int32" : "uint32",
        64: meta.signed ? "int64" : "uint64",
      } as Record<number, Dtype>
    )[bits];
  }
  return undefined;
}
