/**
 * A buffer process (the real `lclstream buffer serve`) holding a run of
 * batches received on the native data path: V8 must not collect again and
 * again for memory that collecting cannot free.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, createContextValues } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { createMeshTransportFromCertDir, publishedBatches } from "../../services/common/client.js";
import { nativeStreamModule } from "../../services/common/native-stream.js";
import { issueBufferPki, startLclstream, type RunningCommand } from "../helpers/cli.js";
import { consume, publishMessages } from "../helpers/buffer.js";
import { freePort } from "../helpers/ports.js";

const MiB = 1024 * 1024;

describe.runIf(nativeStreamModule())("a buffer holding natively received batches", () => {
  let dir: string;
  let buffer: RunningCommand | undefined;
  let url: string;
  let metricsUrl: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-held-"));
    const state = await issueBufferPki(dir, "held.lclstream");
    url = `https://127.0.0.1:${await freePort()}`;
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    buffer = await startLclstream(
      [
        "buffer",
        "serve",
        "--state-dir",
        state,
        "--cert-dir",
        join(dir, "buffer"),
        "--submitter",
        "user/alice",
        "--port",
        url.split(":").at(-1)!,
        "--metrics-port",
        String(metricsPort),
      ],
      [/^buffer: /],
    );
  });
  afterAll(async () => {
    await buffer?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The buffer's full collections so far (V8's mark-sweep-compact, and incremental marking), from its own metrics. */
  const fullCollections = async () => {
    const text = await (await fetch(metricsUrl)).text();
    return [...text.matchAll(/^lclstream_nodejs_gc_duration_seconds_count\{[^}]*kind="(major|incremental)"[^}]*\} (\S+)$/gm)].reduce(
      (n, m) => n + Number(m[2]),
      0,
    );
  };

  it("does not start a full collection for every 64 MiB it holds, and gives every byte back to its consumer", async () => {
    const alice = createClient(BufferService, await createMeshTransportFromCertDir(url, join(dir, "alice")));
    const { stream, publishToken } = await alice.createStream({ stream: { capacityBytes: BigInt(512 * MiB), consumerGroups: [{ name: "g" }] } });
    const batches = 256;
    const before = await fullCollections();
    // 256 MiB held (no consumer yet): V8 counted each as external memory, and each 64 MiB more started a full collection.
    const contextValues = createContextValues().set(publishedBatches, true);
    await alice.publish(publishMessages(stream!.name, publishToken, 0, 0, batches, { done: true, payloadBytes: MiB }), { contextValues });
    expect((await fullCollections()) - before).toBeLessThanOrEqual(1);
    const got = await consume(alice, stream!.name, "g");
    expect(got.seqs).toHaveLength(batches);
    expect(got.end).toMatchObject({ batchCount: BigInt(batches) });
  });
});
