/**
 * The live viewer in a real browser (Debian's chromium, headless, driven by
 * playwright-core) against the whole mesh: it shows a streaming request's
 * throughput and its newest frame, cancels it, and watching never takes
 * anything from the analysis group.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";
import { createClient } from "@connectrpc/connect";
import { DeliveryMode } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { fetchRequest } from "../../services/cli/fetch.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { startViewerGateway } from "../../services/viewer/gateway.js";
import { debianTool } from "../helpers/tools.js";
import { internalConfig } from "../helpers/producer-config.js";

const staticDir = fileURLToPath(new URL("../../dist/viewer", import.meta.url));
const artifacts = fileURLToPath(new URL("../../test-artifacts", import.meta.url));

const crystallography = (events: number, rateHz: number) => ({
  parallelism: 1,
  consumerGroups: [{ name: "analysis" }, { name: "viewer", mode: DeliveryMode.LATEST_ONLY }],
  producer: internalConfig(
    events,
    { frame: { type: "SyntheticAreaDetector", geometry: "small", peaks: { min: 5, max: 20 } } },
    {
      seed: 9,
      rateHz,
      batchSize: 2,
      steps: [{ type: "PeakFinder", data_source: "frame", snr: 6, min_pixels: 2, max_peaks: 64, min_peaks_for_hit: 3 }],
    },
  ),
});

describe("the live viewer in a browser", () => {
  let dir: string;
  let mesh: LocalMesh;
  let tls: CertMaterial;
  let viewer: Awaited<ReturnType<typeof startViewerGateway>>;
  let browser: Browser;
  let page: Page;
  const requests = () => createClient(DataRequestService, createMeshTransport({ baseUrl: mesh.endpoints.request, tls }));
  const consume = (name: string, signal: AbortSignal) =>
    fetchRequest({ requests: requests(), transportFor: (baseUrl) => createMeshTransport({ baseUrl, tls }), name, group: "analysis", signal });

  beforeAll(async () => {
    if (!existsSync(join(staticDir, "index.html"))) throw new Error(`${staticDir} is missing: run \`npm run build\` (npm run test:system does)`);
    dir = await mkdtemp(join(tmpdir(), "lclstream-viewer-"));
    mesh = await startLocalMesh({ stateDir: dir });
    tls = await readCertDir(mesh.endpoints.certDir);
    viewer = await startViewerGateway({ requestUrl: mesh.endpoints.request, tls, staticDir });
    browser = await chromium.launch({ executablePath: debianTool("chromium"), headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await viewer?.close();
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("shows a streaming request's throughput and newest frame, and cancels it", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: crystallography(4000, 20) as never });
    const analysis = new AbortController();
    const consumer = consume(dataRequest!.name, analysis.signal).catch(() => undefined);
    try {
      await page.goto(viewer.url);
      await page.waitForFunction((name) => document.getElementById("state")?.textContent?.startsWith(name), dataRequest!.name, { timeout: 20_000 });
      await page.waitForFunction(() => /events\/s [1-9]/.test(document.getElementById("rates")?.textContent ?? ""), undefined, { timeout: 20_000 });
      // A frame drawn: many non-black pixels on the canvas.
      await page.waitForFunction(
        () => {
          const c = document.getElementById("frame") as HTMLCanvasElement;
          const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
          let lit = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i]! + d[i + 1]! + d[i + 2]! > 60) lit++;
          return lit > 1000;
        },
        undefined,
        { timeout: 20_000 },
      );
      expect(await page.textContent("#frame-info")).toMatch(/^frame, event \d+/);
      expect(await page.locator("#groups tbody tr").count()).toBe(2);
      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, "viewer.png"), fullPage: true });

      await page.click("#cancel");
      await page.waitForFunction(() => document.getElementById("state")?.dataset.state === "CANCELED", undefined, { timeout: 20_000 });
      expect((await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.state).toBe(State.CANCELED);
    } finally {
      analysis.abort();
      await consumer;
    }
  }, 90_000);

  it("watches without taking anything from the analysis group: every event arrives, the request succeeds", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: crystallography(60, 60) as never });
    await page.goto("about:blank");
    await page.goto(viewer.url);
    await page.selectOption("#request", dataRequest!.name).catch(() => undefined);
    const result = await consume(dataRequest!.name, new AbortController().signal);
    expect(result.totals.eventCount).toBe(60n);
    expect(result.progress.events).toBe(60);
    for (let i = 0; i < 100; i++) {
      if ((await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.state === State.SUCCEEDED) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.state).toBe(State.SUCCEEDED);
  }, 90_000);

  it("refuses calls without the token in the viewer's URL", async () => {
    const res = await fetch(new URL("/lclstream.request.v1.DataRequestService/ListDataRequests", viewer.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("access token");
  });
});
