/** The bench's AES-GCM timer in C (native/src/aes-floor.cc), built beside the native module. */
import { createRequire } from "node:module";
import { join } from "node:path";
import { packageInfo } from "../services/common/package-info.js";

export interface AesFloor {
  /** ms of one core per MiB sealed in 16 KiB records, as TLS 1.3 seals them, over `measureMs`. */
  aesGcmMsPerMiB(measureMs: number): number;
  /** AES-256-GCM of `data` (ciphertext, then the 16-byte tag): the work the timer times. */
  seal(key: Buffer, nonce: Buffer, data: Buffer): Buffer;
}

/** The helper, or undefined when it was not built (`npm run build:native`). */
export function nativeAesFloor(): AesFloor | undefined {
  try {
    return createRequire(import.meta.url)(join(packageInfo().root, "native/build/Release/lclstream_aes_floor.node")) as AesFloor;
  } catch {
    return undefined;
  }
}
