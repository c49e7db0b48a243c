/**
 * The live viewer in a real browser (Debian's chromium, headless, driven by
 * playwright-core) against the whole mesh: it shows a streaming request's
 * throughput and its newest frame, cancels it, and watching never takes
 * anything from the analysis group.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
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

const crystallography = (events: number, rateHz: number, paced?: boolean, geometry = "small") => ({
  parallelism: 1,
  consumerGroups: [{ name: "analysis" }, { name: "viewer", mode: DeliveryMode.LATEST_ONLY }],
  producer: internalConfig(
    events,
    { frame: { type: "SyntheticAreaDetector", geometry, peaks: { min: 5, max: 20 } } },
    {
      seed: 9,
      rateHz,
      paced,
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
  const consoleErrors: string[] = [];
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
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e) => consoleErrors.push(e.message));
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await viewer?.close();
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("shows a streaming request's throughput and newest frame, and cancels it", async () => {
    // ePix10k2M frames: sixteen panels in four quadrants.
    const { dataRequest } = await requests().createDataRequest({ dataRequest: crystallography(4000, 10, true, "epix10k2M") as never });
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
      expect(await page.textContent("#frame-info")).toMatch(/^frame, event \d+ \(batch \d+ of rank 0\) · ePix10k2M · \d+ peaks · (HIT|no hit)$/);
      expect(await page.locator("#groups tbody tr").count()).toBe(2);
      // The throughput plot has its axes, with units, and a legend naming both series.
      expect(await page.locator("#throughput .u-axis").count()).toBe(3);
      expect(await page.textContent("#throughput")).toMatch(/events\/s[\s\S]*MB\/s/);
      // Every circled peak is brighter than the frame's median (max-pooling keeps it), and a colour bar gives the values.
      await page.waitForFunction(() => JSON.parse((document.getElementById("frame") as HTMLCanvasElement).dataset.peaks ?? "[]").length > 0, undefined, {
        timeout: 20_000,
      });
      const brightness = await page.evaluate(() => {
        const c = document.getElementById("frame") as HTMLCanvasElement;
        const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        const lum = (x: number, y: number) => {
          const o = (Math.round(y) * c.width + Math.round(x)) * 4;
          return 0.2126 * d[o]! + 0.7152 * d[o + 1]! + 0.0722 * d[o + 2]!;
        };
        const all: number[] = [];
        for (let y = 0; y < c.height; y += 2) for (let x = 0; x < c.width; x += 2) all.push(lum(x, y));
        all.sort((a, b) => a - b);
        const peaks = JSON.parse(c.dataset.peaks!) as { x: number; y: number }[];
        return { median: all[Math.floor(all.length / 2)]!, peaks: peaks.map((p) => lum(p.x, p.y)) };
      });
      for (const p of brightness.peaks) expect(p).toBeGreaterThan(brightness.median);
      expect(await page.isVisible("#colour-bar")).toBe(true);
      // The pixel under the cursor, with its place.
      const box = (await page.locator("#frame").boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.12, box.y + box.height * 0.12);
      expect(await page.textContent("#cursor")).toMatch(/^panel 0, row \d+, column \d+: [-\d.e+]+$/);
      // The run panels: hit rate over time, and the peaks gathered on the powder pattern.
      await page.waitForFunction(() => Number(document.getElementById("powder")?.dataset.peaks ?? 0) > 20, undefined, { timeout: 20_000 });
      expect(await page.isVisible("#crystallography")).toBe(true);
      expect(await page.isHidden("#time-of-flight")).toBe(true);
      expect(await page.locator("#hit-rate .u-axis").count()).toBe(2);
      expect(await page.locator("#lag .u-legend").textContent()).toMatch(/analysis[\s\S]*viewer/);
      expect(consoleErrors, consoleErrors.join("\n")).toEqual([]);
      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, "viewer-crystallography.png"), fullPage: true });

      await page.click("#cancel");
      await page.waitForFunction(() => document.getElementById("state")?.dataset.state === "CANCELED", undefined, { timeout: 20_000 });
      expect((await requests().getDataRequest({ name: dataRequest!.name })).dataRequest!.state).toBe(State.CANCELED);
    } finally {
      analysis.abort();
      await consumer;
    }
  }, 90_000);

  it("shows a time-of-flight request's waveforms with their hits, channels and axes", async () => {
    const tof = {
      parallelism: 1,
      consumerGroups: [{ name: "analysis" }, { name: "viewer", mode: DeliveryMode.LATEST_ONLY }],
      producer: internalConfig(
        4000,
        { tof: { type: "SyntheticDigitizer", channels: 4, samples: 2048 } },
        { seed: 4, rateHz: 20, paced: true, batchSize: 2, steps: [{ type: "TimeOfFlightHits", data_source: "tof", threshold: 40 }] },
      ),
    };
    const { dataRequest } = await requests().createDataRequest({ dataRequest: tof as never });
    try {
      await page.goto("about:blank");
      await page.goto(viewer.url);
      await page.waitForFunction(() => /^tof, event \d+ .* · \d+ hits$/.test(document.getElementById("frame-info")?.textContent ?? ""), undefined, {
        timeout: 30_000,
      });
      // Four bands, each with a hit marked in red.
      const red = await page.evaluate(() => {
        const c = document.getElementById("frame") as HTMLCanvasElement;
        const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        const bands = [0, 0, 0, 0];
        for (let i = 0; i < d.length; i += 4) if (d[i]! > 200 && d[i + 1]! < 100 && d[i + 2]! < 100) bands[Math.min(3, Math.floor(i / 4 / c.width / 120))]!++;
        return { bands, height: c.height };
      });
      expect(red.height).toBe(4 * 120 + 28);
      for (const n of red.bands) expect(n).toBeGreaterThan(0);
      // Time in ns (the synthetic digitizer's sample interval), on the waveforms and the hit-time histogram.
      expect(await page.getAttribute("#frame", "data-time-axis")).toBe("ns");
      await page.waitForFunction(() => document.getElementById("hit-times")?.dataset.unit === "ns", undefined, { timeout: 10_000 });
      expect(await page.isHidden("#colour-bar")).toBe(true);
      expect(await page.isVisible("#time-of-flight")).toBe(true);
      await page.waitForFunction(() => /events\/s [1-9]/.test(document.getElementById("rates")?.textContent ?? ""), undefined, { timeout: 20_000 });
      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, "viewer-time-of-flight.png"), fullPage: true });
      expect(consoleErrors, consoleErrors.join("\n")).toEqual([]);
    } finally {
      await requests().cancelDataRequest({ name: dataRequest!.name, reason: "test over" });
    }
  }, 90_000);

  // How many frames a second it draws, and what one draw costs, are measured by `npm run bench` (the viewer scenario),
  // not here: a timed test fails on a busy machine without anything being wrong.
  it("draws Jungfrau 4M frames as they come, each at most once, from a latest-only group", async () => {
    const big = {
      parallelism: 1,
      consumerGroups: [{ name: "viewer", mode: DeliveryMode.LATEST_ONLY }],
      producer: internalConfig(
        100_000,
        { frame: { type: "SyntheticAreaDetector", geometry: "jungfrau4M", peaks: { min: 5, max: 20 } } },
        { seed: 2, rateHz: 20, paced: true, batchSize: 1 },
      ),
    };
    const { dataRequest } = await requests().createDataRequest({ dataRequest: big as never });
    try {
      await page.goto("about:blank");
      await page.goto(viewer.url);
      await page.waitForFunction(() => Number(document.getElementById("frame")?.dataset.draws ?? 0) > 2, undefined, { timeout: 30_000 });
      // Read at one instant: counts read one call apart can straddle a frame's arrival.
      const counts = () =>
        page.evaluate(() => {
          const d = document.getElementById("frame")!.dataset;
          return { draws: Number(d.draws), arrived: Number(d.arrived), drawMs: Number(d.drawMs) };
        });
      const before = await counts();
      // Frames keep coming and keep being drawn...
      await page.waitForFunction((n) => Number(document.getElementById("frame")?.dataset.draws ?? 0) >= n, before.draws + 5, { timeout: 30_000 });
      const after = await counts();
      const about = `${after.draws - before.draws} drawn, ${after.arrived - before.arrived} arrived, last draw ${after.drawMs} ms`;
      // ...each at most once: a frame superseded before the screen's next paint is skipped, never queued or redrawn
      // (one more draw than arrivals when a frame that came before the first count was drawn after it).
      expect(after.draws - before.draws, about).toBeLessThanOrEqual(after.arrived - before.arrived + 1);
      expect(after.drawMs, about).toBeGreaterThan(0);
      expect(await page.textContent("#frame-info")).toMatch(/^frame, event \d+/);
    } finally {
      await requests().cancelDataRequest({ name: dataRequest!.name, reason: "test over" });
    }
  }, 90_000);

  it("draws Jungfrau 4M frames in psana's geometry from a geometry file", async () => {
    const geometryFile = join(import.meta.dirname, "..", "fixtures", "psana-geometry", "geometry-def-jungfrau4M.data");
    const withGeometry = await startViewerGateway({
      requestUrl: mesh.endpoints.request,
      tls,
      staticDir,
      geometries: [{ name: "geometry-def-jungfrau4M.data", text: await readFile(geometryFile, "utf8") }],
    });
    const big = {
      parallelism: 1,
      consumerGroups: [{ name: "viewer", mode: DeliveryMode.LATEST_ONLY }],
      producer: internalConfig(
        100_000,
        // Raw Jungfrau 4M frames, as psana's det.raw.raw() gives them: 8 modules of 512 x 1024.
        { frame: { type: "SyntheticAreaDetector", geometry: { shape: [8, 512, 1024], dtype: "uint16" }, peaks: { min: 5, max: 20 } } },
        { seed: 5, rateHz: 20, paced: true, batchSize: 1 },
      ),
    };
    const { dataRequest } = await requests().createDataRequest({ dataRequest: big as never });
    try {
      await page.goto("about:blank");
      await page.goto(withGeometry.url);
      await page.waitForFunction(() => Number(document.getElementById("frame")?.dataset.draws ?? 0) > 2, undefined, { timeout: 30_000 });
      expect(await page.textContent("#frame-info"), (await page.textContent("#live-note")) ?? "").toMatch(
        /^frame, event \d+ .*· geometry-def-jungfrau4M\.data/,
      );
      // psana's Jungfrau 4M image is 2299 x 2203 pixels: the canvas keeps its aspect.
      expect(await page.evaluate(() => (document.getElementById("frame") as HTMLCanvasElement).height)).toBe(Math.round((768 * 2203) / 2299));
      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, "viewer-psana-geometry.png"), fullPage: true });
      expect(consoleErrors, consoleErrors.join("\n")).toEqual([]);
    } finally {
      await requests().cancelDataRequest({ name: dataRequest!.name, reason: "test over" });
      await withGeometry.close();
    }
  }, 90_000);

  it("says it is waiting for the first batch until one comes", async () => {
    // Two events a batch at one event every two seconds: the first batch is seconds away.
    const slow = crystallography(40, 0.5, true);
    const { dataRequest } = await requests().createDataRequest({ dataRequest: slow as never });
    try {
      await page.goto("about:blank");
      await page.goto(viewer.url);
      await page.waitForFunction((name) => document.getElementById("state")?.textContent?.startsWith(name), dataRequest!.name, { timeout: 20_000 });
      expect(await page.getAttribute("#live", "data-waiting")).toBe("true");
      expect(await page.textContent("#frame-info")).toBe("waiting for the first batch…");
      await page.waitForFunction(() => document.getElementById("live")?.dataset.waiting === "false", undefined, { timeout: 30_000 });
      expect(await page.textContent("#frame-info")).toMatch(/^frame, event \d+/);
    } finally {
      await requests().cancelDataRequest({ name: dataRequest!.name, reason: "test over" });
    }
  }, 90_000);

  it("leaves the viewer group within a second of the tab closing", async () => {
    const { dataRequest } = await requests().createDataRequest({ dataRequest: crystallography(4000, 20) as never });
    const viewers = async () =>
      (await requests().getDataRequest({ name: dataRequest!.name })).dataRequest?.metrics?.groups.find((g) => g.group === "viewer")?.consumers ?? 0;
    const tab = await browser.newPage();
    try {
      await tab.goto(viewer.url);
      for (let i = 0; i < 200 && (await viewers()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await viewers()).toBe(1);
      await tab.close();
      const closed = performance.now();
      while ((await viewers()) > 0 && performance.now() - closed < 1000) await new Promise((r) => setTimeout(r, 50));
      expect(await viewers()).toBe(0);
    } finally {
      await requests().cancelDataRequest({ name: dataRequest!.name, reason: "test over" });
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
