/**
 * `lclstream demo` (`npm run demo`): the whole flow on loopback with nothing
 * installed beyond `npm ci`. It starts the mesh with a fresh dev PKI, asks
 * for data from the synthetic crystallography source (Jungfrau 4M frames,
 * peak finding on) with two producer ranks, streams it to a consumer with a
 * progress bar, and prints what arrived.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { SingleBar } from "cli-progress";
import { createClient } from "@connectrpc/connect";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { createMeshTransport } from "../common/client.js";
import { readCertDir } from "../common/pki.js";
import { stepSchema } from "../producer/config.js";
import { fetchRequest } from "./fetch.js";

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("start the mesh on loopback, stream a synthetic crystallography run to a consumer, and report the throughput")
    .option("--events <n>", "events to stream", Number, 160)
    .option("--ranks <n>", "producer ranks", Number, 2)
    .action(async (o: { events: number; ranks: number }) => {
      const stateDir = await mkdtemp(join(tmpdir(), "lclstream-demo-"));
      const started = performance.now();
      const { startLocalMesh } = await import("./local-mesh.js"); // every server: loaded when the demo runs (see program.ts)
      const mesh = await startLocalMesh({ stateDir, logLevel: "error" });
      try {
        const e = mesh.endpoints;
        console.log(
          `mesh up in ${((performance.now() - started) / 1000).toFixed(1)} s: CA, job queue, buffer, producer and request service on loopback, mTLS everywhere`,
        );
        console.log(`you have a certificate of this mesh's own CA, as ${e.user.replace(/^spiffe:\/\/[^/]+\//, "")}; every call below is made with it`);
        const tls = await readCertDir(e.certDir);
        const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: e.request, tls }));
        // The hit threshold printed below is the peak finder's own, as the config parses it.
        const peakFinder = stepSchema.parse({ type: "PeakFinder", data_source: "jungfrau4M" });
        const { dataRequest } = await requests.createDataRequest({
          dataRequest: {
            experiment: "demo",
            parallelism: o.ranks,
            producer: {
              source_identifier: "synthetic:crystallography:run=1",
              skip_incomplete_events: false,
              event_source: { type: "InternalEventSource", number_of_events_to_generate: o.events, seed: 1, rate_hz: 120 },
              data_sources: {
                jungfrau4M: { type: "SyntheticAreaDetector", geometry: "jungfrau4M", peaks: { min: 0, max: 40 } },
                pulse_energy: { type: "SyntheticScalar", mean: 3.5, sigma: 0.2 },
                timestamp: { type: "SyntheticTimestamp" },
              },
              processing_pipeline: { type: "BatchProcessingPipeline", batch_size: 2, steps: [peakFinder] },
              data_serializer: { type: "NativeBinarySerializer" },
              data_handlers: [],
            },
          },
        });
        console.log(`${dataRequest!.name}: ${o.events} Jungfrau 4M events (8 MiB each), peak finding on, ${o.ranks} producer ranks`);
        console.log("the job queue runs the producer ranks; they batch the events into the buffer, and this consumer reads them (lag: batches waiting for it)");
        const bar = process.stdout.isTTY
          ? new SingleBar({ format: "[{bar}] {value}/{total} events | {mbps} MB/s | lag {lag} batches | {duration_formatted}", hideCursor: true })
          : undefined;
        bar?.start(o.events, 0, { mbps: 0, lag: 0 });
        const result = await fetchRequest({
          requests,
          transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }),
          name: dataRequest!.name,
          signal: new AbortController().signal,
          onProgress: (p) => bar?.update(p.events, { mbps: (p.bytesPerSecond / 1e6).toFixed(0), lag: p.lag }),
        });
        bar?.stop();
        const p = result.progress;
        // The request ends once every group has the end of stream.
        let final = (await requests.getDataRequest({ name: dataRequest!.name })).dataRequest!;
        for (let i = 0; i < 50 && final.state !== State.SUCCEEDED && final.state !== State.FAILED; i++) {
          await new Promise((r) => setTimeout(r, 100));
          final = (await requests.getDataRequest({ name: dataRequest!.name })).dataRequest!;
        }
        console.log(
          `received ${p.events} events in ${p.batches} batches: ${(p.bytes / 1e6).toFixed(0)} MB in ${p.seconds.toFixed(1)} s = ${(p.bytesPerSecond / 1e6).toFixed(0)} MB/s`,
        );
        const minPeaks = peakFinder.type === "PeakFinder" ? peakFinder.min_peaks_for_hit : 0;
        console.log(`hits (frames with ${minPeaks} or more Bragg peaks): ${p.hits} of ${p.events}`);
        console.log(
          `end of stream: ${result.totals.batchCount} batches, ${result.totals.eventCount} events from ${result.totals.producerTotals.length} ranks: every event arrived once`,
        );
        console.log(`request ${State[final.state].toLowerCase()}: ${final.stateReason}`);
        if (final.state !== State.SUCCEEDED) process.exitCode = 1;
        console.log(
          [
            "",
            "next, with `npm link` (or as `npx lclstream`):",
            "  lclstream up &                                                        # the same mesh, kept running",
            "  lclstream get examples/crystallography.yaml --out run1 --format hdf5   # a request of your own, into files",
            "  lclstream view                                                        # watch it live in a browser",
          ].join("\n"),
        );
      } finally {
        await mesh.close();
        await rm(stateDir, { recursive: true, force: true });
      }
    });
}
