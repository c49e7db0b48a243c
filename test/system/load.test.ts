import { describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import { useLocalMesh } from "../helpers/mesh.js";
import { consume } from "../helpers/buffer.js";
import { internalConfig } from "../helpers/producer-config.js";

const requestCount = 10;
const consumersPerRequest = 5;
const events = 1500;
const batchSize = 10;
const producer = internalConfig(events, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 64 } }, { seed: 8, rateHz: 100, paced: true, batchSize });

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx ? sxy / sxx : 0;
}

describe("load: 10 requests, 50 consumers", () => {
  const m = useLocalMesh();

  it("delivers every batch of every request, ends them all SUCCEEDED, and holds memory flat", async () => {
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: m.mesh.endpoints.request, tls: m.tls }));
    const rss: [number, number][] = [];
    const began = performance.now();
    const sampler = setInterval(() => rss.push([(performance.now() - began) / 1000, process.memoryUsage().rss / 1e6]), 500);
    try {
      const runs = await Promise.all(
        Array.from({ length: requestCount }, async () => {
          // 16 MiB each: ten of the default 256 MiB would not fit the buffer's 2 GiB budget (and the last would fail, saying so).
          const { dataRequest } = await requests.createDataRequest({
            dataRequest: { producer, bufferCapacityBytes: 16n << 20n, consumerGroups: [{ name: "analysis", maxInFlight: 4 }] } as never,
          });
          const name = dataRequest!.name;
          let r = dataRequest!;
          while (!r.stream) {
            expect(r.state, `${name}: ${r.stateReason}`).toBeLessThan(State.SUCCEEDED);
            await new Promise((resolve) => setTimeout(resolve, 100));
            r = (await requests.getDataRequest({ name })).dataRequest!;
          }
          const buffer = createClient(BufferService, createMeshTransport({ baseUrl: r.bufferEndpoint, tls: m.tls }));
          const consumers = await Promise.all(Array.from({ length: consumersPerRequest }, () => consume(buffer, r.stream, "analysis")));
          return { name, consumers };
        }),
      );
      const batches = events / batchSize;
      for (const { name, consumers } of runs) {
        const seqs = consumers.flatMap((c) => c.seqs.filter((s, i) => !c.redeliveries.includes(s) || c.seqs.indexOf(s) === i));
        expect(new Set(seqs).size, `${name}: every batch`).toBe(batches);
        expect(Math.max(...seqs)).toBe(batches);
        for (const c of consumers)
          expect(c.end, `${name}: every consumer gets the end of stream`).toMatchObject({ batchCount: BigInt(batches), eventCount: BigInt(events) });
        expect(consumers.filter((c) => c.seqs.length > 0).length, `${name}: the work is shared`).toBeGreaterThan(1);
      }
      for (const { name } of runs) {
        await expect.poll(async () => (await requests.getDataRequest({ name })).dataRequest!.state, { timeout: 30_000 }).toBe(State.SUCCEEDED);
      }
    } finally {
      clearInterval(sampler);
    }
    const secondHalf = rss.slice(Math.floor(rss.length / 2));
    const growth = slope(secondHalf);
    console.log(
      `load: ${requestCount} requests x ${consumersPerRequest} consumers, ${((performance.now() - began) / 1000).toFixed(1)} s, RSS ${rss[0]![1].toFixed(0)} -> ${rss.at(-1)![1].toFixed(0)} MB, second-half slope ${growth.toFixed(2)} MB/s`,
    );
    expect(Math.max(...rss.map(([, mb]) => mb))).toBeLessThan(500);
    expect(growth).toBeLessThan(5);
  }, 180_000);
});
