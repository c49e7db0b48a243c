/** HDF5 files for tests, written with h5wasm (the library the producer reads them with). */
import { readFile, writeFile } from "node:fs/promises";
import { h5 } from "../../services/producer/hdf5.js";

/**
 * Writes `/x`: `events` rows of `width` float32 (row i holds i), one
 * gzip-compressed chunk per row, then scribbles over the file from `from`
 * (a fraction of its length) on: the header and the first rows stay
 * readable, the chunks after them do not.
 */
export async function writeCorruptHdf5(path: string, events = 40, width = 4096, from = 0.6): Promise<void> {
  const lib = await h5();
  const file = new lib.File(path, "w");
  // Noise-like values, so that gzip keeps each chunk near its full size.
  const data = Float32Array.from({ length: events * width }, (_, i) => Math.floor(i / width) + Math.sin(i) * 1e-3);
  file.create_dataset({ name: "x", data, shape: [events, width], dtype: "<f", chunks: [1, width], compression: "gzip" });
  file.close();
  const bytes = await readFile(path);
  bytes.fill(0x5a, Math.floor(bytes.length * from));
  await writeFile(path, bytes);
}
