/**
 * lclstreamer's SimplonBinarySerializer: Dectris SIMPLON (1.8) messages in
 * CBOR, each prefixed with "c" (control: start, stop) or "m" (an image), as
 * lclstreamer's serializer writes them. The image is the batch's last event
 * of `data_source_to_serialize`, compressed with bitshuffle and LZ4 in 4096
 * element blocks (bitshuffle's compress_lz4). The last rank sends the start
 * message before its first image and the stop message after its last.
 */
import { encode } from "cbor2";
import lz4 from "lz4js";
import { contiguous } from "../common/byte-parts.js";
import type { ProducerConfig } from "./config.js";
import type { DetectorEvent } from "./event.js";
import { bytesOf, size } from "./ndarray.js";

type SimplonConfig = Extract<ProducerConfig["data_serializer"], { type: "SimplonBinarySerializer" }>;

/** Bitshuffle's bit transposition of `n` elements (n a multiple of 8) of `width` bytes: bit j of byte b of every element, in a row. */
function bitTranspose(src: Uint8Array, n: number, width: number): Uint8Array {
  const out = new Uint8Array(n * width);
  const row = n / 8;
  for (let i = 0; i < n; i++) {
    for (let b = 0; b < width; b++) {
      const v = src[i * width + b]!;
      if (!v) continue;
      for (let j = 0; j < 8; j++) if ((v >> j) & 1) out[(b * 8 + j) * row + (i >> 3)]! |= 1 << (i & 7);
    }
  }
  return out;
}

/** One LZ4 block (what LZ4_compress_default makes): lz4js's, or the literals alone where it found no match. */
function lz4Block(bytes: Uint8Array): Uint8Array {
  const dst = new Uint8Array(lz4.compressBound(bytes.length) + 16);
  const n = lz4.compressBlock(bytes, dst, 0, bytes.length, new Uint32Array(1 << 16));
  if (n > 0) return dst.subarray(0, n);
  let k = 0;
  if (bytes.length >= 15) {
    dst[k++] = 15 << 4;
    let rest = bytes.length - 15;
    for (; rest >= 255; rest -= 255) dst[k++] = 255;
    dst[k++] = rest;
  } else dst[k++] = bytes.length << 4;
  dst.set(bytes, k);
  return dst.subarray(0, k + bytes.length);
}

/**
 * bitshuffle.compress_lz4(array, block_size): blocks of `blockSize` elements
 * (then one of the rest rounded down to 8), each bit-transposed and LZ4
 * compressed behind its big-endian compressed size; the last few elements
 * as they are.
 */
export function bitshuffleLz4(bytes: Uint8Array, width: number, blockSize = 4096): Uint8Array {
  const n = bytes.length / width;
  const parts: Uint8Array[] = [];
  let at = 0;
  const block = (count: number) => {
    const compressed = lz4Block(bitTranspose(bytes.subarray(at * width, (at + count) * width), count, width));
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, compressed.length);
    parts.push(head, compressed);
    at += count;
  };
  while (n - at >= blockSize) block(blockSize);
  const last = n - at - ((n - at) % 8);
  if (last) block(last);
  parts.push(bytes.subarray(at * width));
  return contiguous(parts);
}

const control = (message: object) => prefixed("c", message);
const image = (message: object) => prefixed("m", message);
function prefixed(kind: "c" | "m", message: object): Uint8Array {
  const body = encode(message);
  const out = new Uint8Array(1 + body.length);
  out[0] = kind.charCodeAt(0);
  out.set(body, 1);
  return out;
}

/** The serializer of one rank: the messages of each batch, and those after the last. */
export function createSimplonSerializer(config: SimplonConfig, rank: number, ranks: number) {
  const last = rank === ranks - 1;
  let started = false;
  let runNumber: string | number = 0;
  const messageId = rank * 10000 + 1;
  return {
    /** The batch's messages: the start (the last rank, once), then its last event's image; none when that event lacks it. */
    batch(events: DetectorEvent[]): Uint8Array[] {
      const event = events.at(-1)!;
      const array = event.fields[config.data_source_to_serialize];
      if (!array) return [];
      if (array.dtype !== "int64" && array.dtype !== "float64") {
        throw new Error(
          `SimplonBinarySerializer: ${config.data_source_to_serialize} is ${array.dtype}; lclstreamer takes int64 or float64 (give the data source dtype: float64)`,
        );
      }
      const runInfo = event.text?.run_info ?? [];
      runNumber = runInfo[2] ?? 0;
      const messages: Uint8Array[] = [];
      if (last && !started) {
        const geometry = event.text?.detector_geometry ?? [];
        messages.push(
          control({
            type: "start",
            run_number: runNumber,
            start_time: runInfo[1] ?? "",
            duration: "N/A",
            beamline: (runInfo[3] ?? "").slice(4, 7).toUpperCase(),
            experiment: runInfo[0] ?? "",
            beam_type: "X-ray",
            polarization: { fraction: config.polarization_fraction, axis: config.polarization_axis },
            data_collection_rate: config.data_collection_rate,
            datatype: array.dtype,
            shape: array.shape.join("x"),
            algorithm: "bitshuffle-lz4",
            detector: {
              name: config.detector_name,
              id: geometry[0] ?? "",
              type: config.detector_type,
              geometry: geometry[1] ?? "",
              pixel_coords: geometry.length > 2 ? new TextEncoder().encode(geometry[2]) : "",
              material: "???",
              thickness: "???",
            },
            message_id: messageId,
            timestamp: Date.now() / 1000,
          }),
        );
      }
      started = true;
      const values = array.data;
      let sum = 0;
      for (let i = 0; i < size(array.shape); i++) sum += Number(values[i]);
      const beam = event.fields.beam_data?.data;
      const timestamp = event.fields.timestamp?.data[0];
      messages.push(
        image({
          type: "image",
          run: runNumber,
          compressed_data: bitshuffleLz4(bytesOf(array), 8),
          ...(beam
            ? {
                beam_direction: { angle_x: Number(beam[0]), angle_y: Number(beam[1]), position_x: Number(beam[2]), position_y: Number(beam[3]) },
                photon_energy: Number(beam[4]),
                photon_wavelength: 0,
              }
            : {}),
          dtype: array.dtype,
          sum,
          message_id: messageId,
          timestamp: timestamp === undefined ? 0 : Number(timestamp),
        }),
      );
      return messages;
    },
    /** After the last batch: the stop message, from the last rank. */
    end(): Uint8Array[] {
      return last ? [control({ type: "stop", run: runNumber, timestamp: Date.now() / 1000 })] : [];
    },
  };
}
