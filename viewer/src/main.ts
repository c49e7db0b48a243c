/**
 * The lclstream viewer: the user's requests with their state, throughput,
 * groups and jobs, and a live view of the newest data from a latest-only
 * consumer group (so watching never slows the analysis).
 *
 * Opened from `lclstream view` (the token is in the URL fragment; calls go to
 * that loopback gateway) or through the front door (gRPC-Web, with the
 * browser's client certificate).
 */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { BufferService, DeliveryMode } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import type { Array as ArrayMessage, EventBatch } from "../../gen/lclstream/data/v1/data_pb.js";
import type { JsonObject } from "@bufbuild/protobuf";
import { DataRequestService, DataRequest_State as State, type DataRequest } from "../../gen/lclstream/request/v1/request_pb.js";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { parseGeometry, placePixels } from "../../services/viewer/psana-geometry.js";
import { fitView, panelCount, type ScaleKind, useGeometry, valueAt, type View } from "./detector.js";
import { RunPanels } from "./run-panels.js";
import { type DrawnImage, drawColourBar, drawImage, drawWaveforms, type EventArray, eventOf, formatValue } from "./render.js";
import { type TimeAxis, waveformTime } from "./time-axis.js";

const token = location.hash.slice(1);
const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
// Binary, not connect-web's default JSON: a Jungfrau 4M frame as base64 JSON took the page and the gateway a second each.
const transport = token
  ? createConnectTransport({ baseUrl: location.origin, interceptors: [auth], useBinaryFormat: true })
  : createGrpcWebTransport({ baseUrl: location.origin });
const requests = createClient(DataRequestService, transport);
const buffer = createClient(BufferService, transport);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const select = $<HTMLSelectElement>("request");
const fieldSelect = $<HTMLSelectElement>("field");
const stateText = $("state");
const cancelButton = $<HTMLButtonElement>("cancel");
const ended = new Set([State.SUCCEEDED, State.FAILED, State.CANCELED]);

let watching: AbortController | undefined;
/** Cumulative counts as they came (seconds since the page opened), for rates over a sliding window. */
let counts: { t: number; events: number; bytes: number }[] = [];
let latest: EventBatch | undefined;
let drawPending = false;
/** The watched request's producer config: where a waveform's sample interval can come from. */
let producerConfig: JsonObject | undefined;
/** The frame on screen, its view (undefined: the whole frame) and the shape it was drawn for. */
let drawn: (DrawnImage & { image: EventArray }) | undefined;
let zoom: View | undefined;
let zoomShape = "";

/** events/s and MB/s over the last two minutes, on two scales with units. */
const flow = new uPlot(
  {
    width: 600,
    height: 200,
    scales: {
      // The last two minutes, whatever the points (one point alone made uPlot span years).
      x: { time: true, range: (_u, _lo, hi) => [(hi ?? Date.now() / 1000) - 120, hi ?? Date.now() / 1000] },
      events: { auto: true, range: (_u, _lo, hi) => [0, Math.max(1, hi)] },
      mb: { auto: true, range: (_u, _lo, hi) => [0, Math.max(1, hi)] },
    },
    series: [
      {},
      { label: "events/s", scale: "events", stroke: "#5ac8fa", width: 2, value: (_u, v) => (v == null ? "-" : v.toFixed(1)) },
      { label: "MB/s", scale: "mb", stroke: "#ffcc00", width: 2, value: (_u, v) => (v == null ? "-" : v.toFixed(2)) },
    ],
    axes: [
      { stroke: "#aaa", grid: { stroke: "#8883" } },
      { scale: "events", label: "events/s", stroke: "#5ac8fa", grid: { stroke: "#8883" } },
      { scale: "mb", label: "MB/s", side: 1, stroke: "#ffcc00", grid: { show: false } },
    ],
  },
  [[], [], []],
  $("throughput"),
);
const run = new RunPanels();

async function refreshList() {
  const { dataRequests: listed } = await requests.listDataRequests({ pageSize: 100 });
  // Newest first.
  const dataRequests = [...listed].sort((a, b) => Number((b.createTime?.seconds ?? 0n) - (a.createTime?.seconds ?? 0n)) || b.name.localeCompare(a.name));
  const current = select.value;
  select.replaceChildren(
    ...dataRequests.map((r) => {
      const option = new Option(`${r.name.replace("dataRequests/", "")} (${State[r.state].toLowerCase()})`, r.name);
      option.selected = r.name === current;
      return option;
    }),
  );
  if (!current && dataRequests.length) {
    // The newest running request, else the newest.
    const pick = dataRequests.find((r) => !ended.has(r.state)) ?? dataRequests[0]!;
    select.value = pick.name;
    void watch(pick.name);
  }
}

function showRequest(r: DataRequest) {
  stateText.textContent = `${r.name}: ${State[r.state].toLowerCase()}${r.stateReason ? ` (${r.stateReason})` : ""}`;
  stateText.dataset.state = State[r.state];
  cancelButton.disabled = ended.has(r.state);
  const m = r.metrics;
  if (!m) return;
  // Rates from the cumulative counts over the last five seconds: they cannot read 0 while bytes move.
  const now = Date.now() / 1000;
  counts = [...counts, { t: now, events: Number(m.events), bytes: Number(m.bytes) }].filter((c) => c.t > now - 125);
  const from = counts.find((c) => c.t >= now - 5) ?? counts[0]!;
  const seconds = now - from.t;
  const eventsPerSecond = seconds > 0 ? (Number(m.events) - from.events) / seconds : m.eventsPerSecond;
  const mbPerSecond = (seconds > 0 ? (Number(m.bytes) - from.bytes) / seconds : m.bytesPerSecond) / 1e6;
  $("rates").textContent =
    `events/s ${eventsPerSecond.toFixed(1)} · MB/s ${mbPerSecond.toFixed(2)} · events ${m.events} · ${formatValue(Number(m.bytes) / 1e6)} MB`;
  const series = flow.data.map((a) => [...(a as number[])]) as number[][];
  series[0]!.push(now);
  series[1]!.push(eventsPerSecond);
  series[2]!.push(mbPerSecond);
  const keep = series[0]!.findIndex((t) => t > now - 120);
  flow.setData(series.map((a) => a.slice(Math.max(0, keep))) as uPlot.AlignedData);
  run.lag(m.groups, now);
  $("groups")
    .querySelector("tbody")!
    .replaceChildren(...m.groups.map((g) => row(g.group, String(g.consumers), String(g.deliveredBatches), String(g.lagBatches))));
  $("jobs")
    .querySelector("tbody")!
    .replaceChildren(...m.jobs.map((j) => row(j.job, j.state, j.info)));
}

function row(...cells: string[]) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.append(Object.assign(document.createElement("td"), { textContent: c }));
  return tr;
}

async function watch(name: string) {
  watching?.abort();
  const abort = (watching = new AbortController());
  counts = [];
  flow.setData([[], [], []]);
  run.reset();
  latest = undefined;
  drawn = undefined;
  showWaiting("waiting for the first batch…");
  let live: Promise<void> | undefined;
  try {
    for await (const { dataRequest } of requests.watchDataRequest({ name }, { signal: abort.signal })) {
      if (!dataRequest) continue;
      showRequest(dataRequest);
      if (!live && dataRequest.stream) live = liveView(dataRequest, abort.signal);
    }
  } catch (error) {
    if (!abort.signal.aborted) stateText.textContent = `${name}: ${(error as Error).message}`;
  }
}

/** Subscribes as the request's latest-only group and draws the newest batch when the screen can. */
async function liveView(r: DataRequest, signal: AbortSignal) {
  producerConfig = r.producer;
  const group = r.consumerGroups.find((g) => g.mode === DeliveryMode.LATEST_ONLY);
  const note = $("live-note");
  if (!group) {
    note.textContent = "— this request has no latest-only group; add one (mode DELIVERY_MODE_LATEST_ONLY) to watch its data";
    return;
  }
  note.textContent = `— group ${group.name}, newest batch only`;
  try {
    for await (const res of buffer.subscribe({ stream: r.stream, consumerGroup: group.name }, { signal })) {
      if (res.kind.case !== "batch") continue;
      latest = res.kind.value;
      frame.dataset.arrived = String(Number(frame.dataset.arrived ?? 0) + 1); // batches received, for the frame-rate benchmark and tests
      run.add(latest, Date.now() / 1000, timeAxisOf);
      if (!drawPending) {
        drawPending = true;
        requestAnimationFrame(draw);
      }
    }
  } catch (error) {
    if (!signal.aborted) note.textContent = `— ${(error as Error).message}`;
  }
}

/** The time axis of waveform field `name` (event `index` of the batch's, by default its first). */
function timeAxisOf(name: string, fields: { [name: string]: ArrayMessage }, index = 0): TimeAxis | undefined {
  const times = fields[`${name}_times`];
  return waveformTime(name, times && eventOf(times, index), producerConfig);
}

/** The fields a batch can show: images (2 or more axes an event) and waveforms; found peaks and hits go on top. */
function drawableFields(batch: EventBatch): string[] {
  if (batch.payload.case !== "columns") return [];
  const fields = batch.payload.value.fields;
  return Object.keys(fields).filter(
    (n) => !/_(peaks|hits|hit|times)$/.test(n) && (fields[n]!.shape.length >= 3 || (fields[n]!.shape.length === 2 && Number(fields[n]!.shape[1]) >= 64)),
  );
}

/** The live view's state before any batch came: said in words, on the canvas and beside it. */
function showWaiting(words: string) {
  const canvas = $<HTMLCanvasElement>("frame");
  canvas.width = 768;
  canvas.height = 256;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#ccc";
  ctx.font = "20px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.fillText(words, canvas.width / 2, canvas.height / 2);
  $("frame-info").textContent = words;
  $("live").dataset.waiting = "true";
}

function draw() {
  drawPending = false;
  const started = performance.now();
  const batch = latest;
  if (batch?.payload.case !== "columns") return;
  const names = drawableFields(batch);
  if (fieldSelect.options.length !== names.length) fieldSelect.replaceChildren(...names.map((n) => new Option(n, n)));
  const name = fieldSelect.value || names[0];
  const fields = batch.payload.value.fields;
  const array = name ? fields[name] : undefined;
  if (!name || !array) return;
  const last = Number(array.shape[0]) - 1;
  const event = eventOf(array, last);
  if (!event) return;
  $("live").dataset.waiting = "false";
  const canvas = $<HTMLCanvasElement>("frame");
  const colourBar = $<HTMLCanvasElement>("colour-bar");
  const isImage = event.shape.length >= 2 && !fields[`${name}_hits`] && (event.shape.at(-2) ?? 0) >= 16;
  let about = "";
  if (isImage) {
    const shape = event.shape.join("x");
    if (shape !== zoomShape) [zoom, zoomShape] = [undefined, shape];
    const peaks = fields[`${name}_peaks`];
    const kind = $<HTMLSelectElement>("scale").value as ScaleKind;
    drawn = {
      ...drawImage(canvas, event, { kind, auto: $<HTMLInputElement>("auto").checked, view: zoom, peaks: peaks && eventOf(peaks, last) }),
      image: event,
    };
    canvas.dataset.peaks = JSON.stringify(drawn.peaks);
    colourBar.hidden = false;
    drawColourBar(colourBar, kind, drawn.lo, drawn.hi);
    const npeaks = fields[`${name}_npeaks`] && eventOf(fields[`${name}_npeaks`]!, last)?.values[0];
    const hit = fields[`${name}_hit`] && eventOf(fields[`${name}_hit`]!, last)?.values[0];
    const parts = [panelCount(drawn.layout) > 1 ? drawn.layout.name : "", zoom ? `zoomed ${formatValue(1 / zoom.pixelsPerScreenPixel)}x` : ""];
    if (npeaks !== undefined) parts.push(`${npeaks} peaks`);
    if (hit !== undefined) parts.push(hit ? "HIT" : "no hit");
    about = parts.filter(Boolean).join(" · ");
  } else {
    drawn = undefined;
    colourBar.hidden = true;
    const hits = fields[`${name}_hits`];
    drawWaveforms(canvas, event, hits && eventOf(hits, last), timeAxisOf(name, fields, last));
    const nhits = fields[`${name}_nhits`] && eventOf(fields[`${name}_nhits`]!, last)?.values;
    if (nhits) about = `${Array.from(nhits).reduce((a, b) => a + Number(b), 0)} hits`;
  }
  canvas.dataset.draws = String(Number(canvas.dataset.draws ?? 0) + 1); // frames drawn, for the frame-rate benchmark and tests
  canvas.dataset.drawMs = (performance.now() - started).toFixed(1); // what one costs, whatever the data's rate
  $("frame-info").textContent = `${name}, event ${batch.eventIndices[last]} (batch ${batch.seq} of rank ${batch.producerRank})${about ? ` · ${about}` : ""}`;
}

/** The image pixel under a mouse event on the frame, in assembled coordinates. */
function imagePixel(e: MouseEvent): { x: number; y: number } | undefined {
  if (!drawn) return undefined;
  const canvas = e.currentTarget as HTMLCanvasElement;
  const box = canvas.getBoundingClientRect();
  const sx = ((e.clientX - box.left) / box.width) * canvas.width;
  const sy = ((e.clientY - box.top) / box.height) * canvas.height;
  return { x: drawn.view.x0 + sx * drawn.view.pixelsPerScreenPixel, y: drawn.view.y0 + sy * drawn.view.pixelsPerScreenPixel };
}

const frame = $<HTMLCanvasElement>("frame");
// Zoom with the wheel around the cursor, down to 8 screen pixels an image pixel; pan by dragging; double-click for the whole frame.
frame.addEventListener(
  "wheel",
  (e) => {
    const at = imagePixel(e);
    if (!drawn || !at) return;
    e.preventDefault();
    const whole = fitView(drawn.layout, frame.width, frame.height).pixelsPerScreenPixel;
    const k = Math.min(whole, Math.max(1 / 8, drawn.view.pixelsPerScreenPixel * (e.deltaY > 0 ? 1.25 : 0.8)));
    const box = frame.getBoundingClientRect();
    const sx = ((e.clientX - box.left) / box.width) * frame.width;
    const sy = ((e.clientY - box.top) / box.height) * frame.height;
    zoom = k >= whole ? undefined : { x0: at.x - sx * k, y0: at.y - sy * k, pixelsPerScreenPixel: k };
    draw();
  },
  { passive: false },
);
let dragging: { x: number; y: number; view: View } | undefined;
frame.addEventListener("mousedown", (e) => {
  if (drawn) dragging = { x: e.clientX, y: e.clientY, view: drawn.view };
});
window.addEventListener("mouseup", () => (dragging = undefined));
frame.addEventListener("mousemove", (e) => {
  if (dragging && zoom) {
    const scale = (frame.width / frame.getBoundingClientRect().width) * dragging.view.pixelsPerScreenPixel;
    zoom = { ...dragging.view, x0: dragging.view.x0 - (e.clientX - dragging.x) * scale, y0: dragging.view.y0 - (e.clientY - dragging.y) * scale };
    draw();
  }
  const at = imagePixel(e);
  const under = drawn && at ? valueAt(drawn.layout, drawn.image.values, at.x, at.y) : undefined;
  $("cursor").textContent = under
    ? `${panelCount(drawn!.layout) > 1 ? `panel ${under.panel}, ` : ""}row ${under.row}, column ${under.column}: ${formatValue(under.value)}`
    : "";
});
frame.addEventListener("dblclick", () => {
  zoom = undefined;
  draw();
});

select.addEventListener("change", () => void watch(select.value));
fieldSelect.addEventListener("change", draw);
$("scale").addEventListener("change", draw);
$("auto").addEventListener("change", draw);
cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  await requests.cancelDataRequest({ name: select.value, reason: "cancelled from the viewer" }).catch((e: Error) => (stateText.textContent = e.message));
});

/** The psana geometry files `lclstream view --geometry` was given: frames of their shapes are drawn in them. */
async function loadGeometries() {
  const answer = await fetch("geometry.json").catch(() => undefined);
  if (!answer?.ok) return; // served by something other than `lclstream view`
  for (const g of (await answer.json()) as { name: string; text: string }[]) useGeometry(g.name, placePixels(parseGeometry(g.text)));
}

void loadGeometries()
  .catch((e: Error) => ($("live-note").textContent = `— geometry: ${e.message}`))
  .finally(() => {
    void refreshList();
    setInterval(() => void refreshList().catch(() => undefined), 3000);
  });
