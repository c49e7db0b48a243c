import { createCipheriv, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { nativeAesFloor } from "../../bench/aes-floor.js";

// The bench's AES-GCM floor (bench/README.md, the floor) is only as true as the work it times.
describe.skipIf(process.env.LCLSTREAM_NATIVE === "0")("the bench's AES-GCM floor helper", () => {
  const helper = nativeAesFloor();

  it("is built with the native module", () => {
    expect(helper, "npm ci builds native/build/Release/lclstream_aes_floor.node").toBeDefined();
  });

  it("seals a 16 KiB record exactly as node:crypto's AES-256-GCM does", () => {
    const [key, nonce, record] = [randomBytes(32), randomBytes(12), randomBytes(16 * 1024)];
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    const expected = Buffer.concat([cipher.update(record), cipher.final(), cipher.getAuthTag()]);
    expect(helper!.seal(key, nonce, record).equals(expected)).toBe(true);
    // A different nonce seals differently: the nonce is used, not ignored.
    expect(helper!.seal(key, randomBytes(12), record).equals(expected)).toBe(false);
  });

  it("refuses a key or nonce of the wrong size", () => {
    expect(() => helper!.seal(randomBytes(16), randomBytes(12), Buffer.alloc(1))).toThrow(/32-byte key/);
  });

  it("times a MiB at a plausible cost", () => {
    const perMiB = helper!.aesGcmMsPerMiB(100);
    expect(perMiB).toBeGreaterThan(0.01); // 100 GB/s would mean it sealed nothing
    expect(perMiB).toBeLessThan(50);
  });
});
