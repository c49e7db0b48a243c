/** lz4js ships no types: the two functions the SIMPLON serializer uses. */
declare module "lz4js" {
  /** The largest size `n` bytes compress to. */
  export function compressBound(n: number): number;
  /** Compresses src[sIndex, sIndex + sLength) into dst as one LZ4 block; its length, or 0 when it found nothing to compress. */
  export function compressBlock(src: Uint8Array, dst: Uint8Array, sIndex: number, sLength: number, hashTable: Uint32Array): number;
}
