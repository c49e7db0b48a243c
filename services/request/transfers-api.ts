/**
 * lclstream_api's REST surface (`/v1/transfers`), over HTTP/1.1 or HTTP/2,
 * answered by DataRequestService itself: each route calls the RPC through
 * the server's own router (so identity, policy and logging are the RPC's)
 * and reshapes the JSON as lclstream_api writes it (src/lclstream_api/
 * models.py: TransferStatus, TransferInfo; errors as FastAPI's {"detail"}).
 *
 * Where it differs from lclstream_api: the caller is the client
 * certificate's identity (a `user` query parameter is ignored, and a Warning
 * header says so); a transfer id is the data request's id, a string; the list
 * holds finished transfers too, newest first.
 */
import type { Http2ServerRequest } from "node:http2";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { parse as parseYaml } from "yaml";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { HttpRoute, UnaryCall } from "../common/node-handler.js";
import { psikStateNames } from "../jobs/job-states.js";

const service = "/lclstream.request.v1.DataRequestService";
/** The largest lclstreamer config accepted, in bytes. */
const maxBodyBytes = 1024 * 1024;

type PsikState = (typeof psikStateNames)[number];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: JsonValue,
  ) {
    super(typeof detail === "string" ? detail : "invalid request");
  }
}

const seconds = (time: JsonValue | undefined) => (typeof time === "string" ? Date.parse(time) / 1000 : 0);
/** The request's jobs as GetDataRequest reports them (ListDataRequests leaves them out). */
const jobsOf = (r: JsonObject) => ((r.metrics as JsonObject | undefined)?.jobs as JsonObject[] | undefined) ?? [];

/** A data request's state as a psik JobState, the way lclstream_api reports a transfer. */
function psikState(r: JsonObject): PsikState {
  const jobs = jobsOf(r);
  switch (r.state) {
    case "STATE_RUNNING":
      return jobs.some((j) => j.state === "ACTIVE") || jobs.length === 0 ? "active" : "queued";
    case "STATE_DRAINING":
      return "active";
    case "STATE_SUCCEEDED":
      return "completed";
    case "STATE_FAILED":
      return "failed";
    case "STATE_CANCELED":
      return "canceled";
    default:
      return "new";
  }
}

/** lclstream_api's TransferStatus {time, jobndx, state, info, id, url, user}. */
function transferStatus(r: JsonObject) {
  const jobs = jobsOf(r);
  const endpoint = (r.bufferEndpoint as string | undefined) ?? "";
  const stream = (r.stream as string | undefined) ?? "";
  return {
    time: seconds(r.updateTime ?? r.createTime),
    jobndx: Math.max(0, ...jobs.map((j) => Number(j.jobndx ?? 0))),
    state: psikState(r),
    info: (r.stateReason as string | undefined) || ((jobs[0]?.info as string | undefined) ?? "") || "ok",
    id: (r.name as string).slice("dataRequests/".length),
    // Where to read it: the buffer's endpoint and the stream's name.
    url: endpoint && stream ? `${endpoint}/${stream}` : "",
    user: r.owner as string,
  };
}

/** lclstream_api's TransferInfo {user, log, metrics}, with the TransferStatus fields beside them. */
function transferInfo(r: JsonObject) {
  const status = transferStatus(r);
  const m = (r.metrics as JsonObject | undefined) ?? {};
  const groups = (m.groups as JsonObject[] | undefined) ?? [];
  const jobs = jobsOf(r);
  const count = (v: JsonValue | undefined) => Number(v ?? 0);
  return {
    ...status,
    // A summary of where the parts are now (lclstream_api logs each callback; this service keeps no such log).
    log: [
      { time: seconds(r.createTime), client: "cache", state: "new", info: "ok", jobndx: 0 },
      ...jobs.map((j) => ({ time: status.time, client: "producer", state: String(j.state).toLowerCase(), info: j.info ?? "", jobndx: count(j.jobndx) })),
      { time: status.time, client: "cache", state: status.state, info: status.info, jobndx: status.jobndx },
    ],
    metrics: {
      time: Date.now() / 1000,
      producers: count(r.parallelism),
      recvd: count(m.batches),
      sent: groups.reduce((n, g) => n + count(g.deliveredBatches), 0),
      buffered: Math.max(0, ...groups.map((g) => count(g.lagBatches))),
    },
  };
}

/** FastAPI's error shape; gRPC's field violations as its 422 details. */
function errorBody(error: ConnectError): { status: number; body: JsonObject } {
  const violations = error.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
  const reason = error.findDetails(ErrorInfoSchema)[0]?.reason;
  const base = { code: Code[error.code]!.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()), ...(reason ? { reason } : {}) };
  if (error.code === Code.InvalidArgument && violations.length) {
    const detail = violations.map((v) => ({
      loc: [
        "body",
        ...v.field
          .replace(/^data_request\.producer\.?/, "")
          .split(".")
          .filter(Boolean),
      ],
      msg: v.description,
      type: "value_error",
    }));
    return { status: 422, body: { detail, ...base } };
  }
  const status = error.code === Code.NotFound ? 404 : codeToHttpStatus(error.code);
  return { status, body: { detail: error.rawMessage, ...base } };
}

async function readBody(req: Http2ServerRequest): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new HttpError(413, `the config is larger than ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The `/v1/transfers` routes, calling DataRequestService through `call`. */
export function createTransfersApi(call: UnaryCall): HttpRoute {
  return (req, res) => {
    const url = new URL(req.url, "https://request");
    const match = /^\/v1\/transfers(?:\/([^/]*))?\/?$/.exec(url.pathname);
    if (!match) return false;
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (url.searchParams.has("user")) {
      headers.warning = `299 lclstream "the user query parameter is ignored: a transfer belongs to the identity of your client certificate"`;
    }
    const rpc = (method: string, body: JsonValue) => call(req, `${service}/${method}`, body, abort.signal) as Promise<JsonObject>;
    route(req, url, match[1] ? decodeURIComponent(match[1]) : undefined, rpc)
      .then((body) => res.writeHead(200, headers).end(JSON.stringify(body)))
      .catch((error: unknown) => {
        const { status, body } = error instanceof HttpError ? { status: error.status, body: { detail: error.detail } } : errorBody(ConnectError.from(error));
        if (!res.headersSent) res.writeHead(status, headers).end(JSON.stringify(body));
      });
    return true;
  };
}

async function route(req: Http2ServerRequest, url: URL, id: string | undefined, rpc: (method: string, body: JsonValue) => Promise<JsonObject>) {
  const name = id === undefined ? undefined : `dataRequests/${id}`;
  if (name === undefined && req.method === "GET") return listTransfers(url, rpc);
  if (name === undefined && req.method === "POST") return createTransfer(await readBody(req), rpc);
  if (name !== undefined && req.method === "GET") return transferInfo((await rpc("GetDataRequest", { name })).dataRequest as JsonObject);
  if (name !== undefined && req.method === "DELETE") {
    await rpc("CancelDataRequest", { name, reason: "deleted through /v1/transfers" }).catch((error: unknown) => {
      // Deleting a transfer that already ended is what lclstream_api answers with null too.
      if (ConnectError.from(error).code !== Code.FailedPrecondition) throw error;
    });
    return null;
  }
  throw new HttpError(405, "Method Not Allowed");
}

function queryInt(url: URL, key: string): number | undefined {
  const raw = url.searchParams.get(key);
  if (raw === null || raw === "") return undefined;
  if (!/^\d+$/.test(raw)) {
    throw new HttpError(422, [{ loc: ["query", key], msg: "Input should be a valid integer", type: "int_parsing", input: raw }]);
  }
  return Number(raw);
}

async function listTransfers(url: URL, rpc: (method: string, body: JsonValue) => Promise<JsonObject>) {
  const index = queryInt(url, "index") ?? 0;
  const limit = queryInt(url, "limit");
  const state = url.searchParams.get("state") ?? undefined;
  if (state !== undefined && !psikStateNames.includes(state as PsikState)) {
    throw new HttpError(422, [
      { loc: ["query", "state"], msg: `Input should be ${psikStateNames.map((s) => `'${s}'`).join(", ")}`, type: "enum", input: state },
    ]);
  }
  const all: JsonObject[] = [];
  let pageToken = "";
  do {
    const page = await rpc("ListDataRequests", { pageSize: 1000, pageToken });
    all.push(...((page.dataRequests as JsonObject[] | undefined) ?? []));
    pageToken = (page.nextPageToken as string | undefined) ?? "";
  } while (pageToken);
  // Newest first, as lclstream_api lists them.
  all.reverse();
  // Each with its jobs (for jobndx, and for queued or active), fetched only where the answer needs them.
  const detail = async (r: JsonObject) => ((await rpc("GetDataRequest", { name: r.name as string })).dataRequest as JsonObject) ?? r;
  let matching = all;
  if (state !== undefined) {
    // Only a running request's psik state depends on its jobs.
    const running = await Promise.all(all.map((r) => (r.state === "STATE_RUNNING" ? detail(r) : r)));
    matching = running.filter((r) => psikState(r) === state);
  }
  const page = matching.slice(index, limit === undefined ? undefined : index + limit);
  return Promise.all(page.map(async (r) => transferStatus(r.metrics ? r : await detail(r))));
}

async function createTransfer(text: string, rpc: (method: string, body: JsonValue) => Promise<JsonObject>) {
  let config: unknown;
  try {
    // JSON as lclstream_api takes it; YAML too (what `lclstream get` and certified's `message` read from files).
    config = parseYaml(text);
  } catch (error) {
    throw new HttpError(422, [{ loc: ["body"], msg: `the body is not JSON (or YAML): ${(error as Error).message}`, type: "json_invalid" }]);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new HttpError(422, [{ loc: ["body"], msg: "the body is an lclstreamer config: a JSON object", type: "model_attributes_type" }]);
  }
  const created = (await rpc("CreateDataRequest", { dataRequest: { producer: config as JsonObject } })).dataRequest as JsonObject;
  const name = created.name as string;
  // The stream is made just after: wait briefly for it, so the answer has its url as lclstream_api's does.
  let r = created;
  for (let i = 0; i < 50 && !r.stream && r.state === "STATE_PENDING"; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    r = (await rpc("GetDataRequest", { name })).dataRequest as JsonObject;
  }
  return transferStatus(r);
}
