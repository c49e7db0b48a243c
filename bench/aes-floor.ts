/** The bench's AES-GCM timer in C (native/src/aes-floor.cc), built beside the native module. */
import { nativeAddon } from "../services/common/native-stream.js";

export interface AesFloor {
  /** ms of one core per MiB sealed in 16 KiB records, as TLS 1.3 seals them, over `measureMs`. */
  aesGcmMsPerMiB(measureMs: number): number;
  /** AES-256-GCM of `data` (ciphertext, then the 16-byte tag): the work the timer times. */
  seal(key: Buffer, nonce: Buffer, data: Buffer): Buffer;
}

/** The helper, or undefined when it was not built (`npm run build:native`). */
export const nativeAesFloor = (): AesFloor | undefined => nativeAddon<AesFloor>("lclstream_aes_floor");
