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
import type { EventBatch } from "../../gen/lclstream/data/v1/data_pb.js";
import { DataRequestService, DataRequest_State as State, type DataRequest } from "../../gen/lclstream/request/v1/request_pb.js";
import { drawImage, drawThroughput, drawWaveforms, eventOf } from "./render.js";

const token = location.hash.slice(1);
const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
const transport = token ? createConnectTransport({ baseUrl: location.origin, interceptors: [auth] }) : createGrpcWebTransport({ baseUrl: location.origin });
const requests = createClient(DataRequestService, transport);
const buffer = createClient(BufferService, transport);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const select = $<HTMLSelectElement>("request");
const fieldSelect = $<HTMLSelectElement>("field");
const stateText = $("state");
const cancelButton = $<HTMLButtonElement>("cancel");
const ended = new Set([State.SUCCEEDED, State.FAILED, State.CANCELED]);

let watching: AbortController | undefined;
let points: { events: number; mb: number }[] = [];
let latest: EventBatch | undefined;
let drawPending = false;

async function refreshList() {
  const { dataRequests } = await requests.listDataRequests({ pageSize: 100 });
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
  const mb = m.bytesPerSecond / 1e6;
  $("rates").textContent = `events/s ${m.eventsPerSecond.toFixed(1)} · MB/s ${mb.toFixed(2)} · events ${m.events}`;
  points = [...points, { events: m.eventsPerSecond, mb }].slice(-120);
  drawThroughput($<HTMLCanvasElement>("throughput"), points);
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
  points = [];
  latest = undefined;
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
      if (!drawPending) {
        drawPending = true;
        requestAnimationFrame(draw);
      }
    }
  } catch (error) {
    if (!signal.aborted) note.textContent = `— ${(error as Error).message}`;
  }
}

/** The fields a batch can show: images (2 or more axes an event) and waveforms; found peaks and hits go on top. */
function drawableFields(batch: EventBatch): string[] {
  if (batch.payload.case !== "columns") return [];
  const fields = batch.payload.value.fields;
  return Object.keys(fields).filter(
    (n) => !/_(peaks|hits|hit)$/.test(n) && (fields[n]!.shape.length >= 3 || (fields[n]!.shape.length === 2 && Number(fields[n]!.shape[1]) >= 64)),
  );
}

function draw() {
  drawPending = false;
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
  const canvas = $<HTMLCanvasElement>("frame");
  const isImage = event.shape.length >= 2 && !fields[`${name}_hits`] && (event.shape.at(-2) ?? 0) >= 16;
  if (isImage) {
    const peaks = fields[`${name}_peaks`];
    drawImage(canvas, event, { log: $<HTMLInputElement>("log").checked, auto: $<HTMLInputElement>("auto").checked, peaks: peaks && eventOf(peaks, last) });
  } else {
    const hits = fields[`${name}_hits`];
    drawWaveforms(canvas, event, hits && eventOf(hits, last));
  }
  $("frame-info").textContent = `${name}, event ${batch.eventIndices[last]} (batch ${batch.seq} of rank ${batch.producerRank})`;
}

select.addEventListener("change", () => void watch(select.value));
fieldSelect.addEventListener("change", draw);
$("log").addEventListener("change", draw);
$("auto").addEventListener("change", draw);
cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  await requests.cancelDataRequest({ name: select.value, reason: "cancelled from the viewer" }).catch((e: Error) => (stateText.textContent = e.message));
});

void refreshList();
setInterval(() => void refreshList().catch(() => undefined), 3000);
