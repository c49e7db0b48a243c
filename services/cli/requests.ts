/** `lclstream up`, `lclstream get` and `lclstream requests …`: the mesh on loopback, and data requests on it. */
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { SingleBar } from "cli-progress";
import { createClient, type Client } from "@connectrpc/connect";
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { parse as parseYaml } from "yaml";
import { DataRequestSchema, DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { createMeshTransport } from "../common/client.js";
import { readCertDir } from "../common/pki.js";
import { fetchRequest, type OutputFormat } from "./fetch.js";
import type { RequestConfig } from "../request/server.js";
import { packageInfo } from "../common/package-info.js";
import {
  addServeOptions,
  asJson,
  collect,
  defaultStateDir,
  meshEndpoint,
  meshOptions,
  parseCount,
  parsePort,
  runUntilSignal,
  serveConfig,
  serveUntilSignal,
} from "./options.js";

/** Where to reach the request service and with which certificate: flags, environment, or a running `lclstream up`. */
async function connect(o: { url?: string; certDir?: string; stateDir: string }) {
  const { url, certDir } = meshEndpoint("request", o);
  const tls = await readCertDir(certDir);
  return {
    requests: createClient(DataRequestService, createMeshTransport({ baseUrl: url, tls })) as Client<typeof DataRequestService>,
    transportFor: (baseUrl: string) => createMeshTransport({ baseUrl, tls }),
  };
}

const connectionOptions = (c: Command) => meshOptions(c, "request", "the data request service");

const requestName = (id: string) => (id.startsWith("dataRequests/") ? id : `dataRequests/${id}`);

/**
 * A request file: either a DataRequest (`producer:`, `consumer_groups:`,
 * `parallelism:` …) or just a producer config (then it is the `producer`).
 */
export function requestFromFile(text: string): JsonObject {
  const value = parseYaml(text) as JsonObject;
  return "producer" in value ? value : { producer: value };
}

/** `--grant user/alice:xpp1234` options as a policy's experiments (undefined when none). */
export function grantsOf(grants: string[]): Record<string, string[]> | undefined {
  if (!grants.length) return undefined;
  const experiments: Record<string, string[]> = {};
  for (const grant of grants) {
    const m = /^((?:user|service)\/[A-Za-z0-9_.@-]+):([A-Za-z0-9_.-]+)$/.exec(grant);
    if (!m) throw new InvalidArgumentError(`--grant ${grant}: give IDENTITY:EXPERIMENT, for example user/alice:xpp1234`);
    (experiments[m[2]!] ??= []).push(m[1]!);
  }
  return experiments;
}

export function registerRequestCommands(program: Command): void {
  program
    .command("up")
    .description("run the whole mesh on loopback (CA, job queue, buffer, producer, request service) until Ctrl-C")
    .option("--state-dir <dir>", "where the dev PKI, databases and jobs live", defaultStateDir())
    .option("--buffers <n>", "buffers in the pool that requests' shards are placed on (shard_count: in a request)", parseCount, 1)
    .option("--grant <identity:experiment>", "let another identity ask for an experiment's data, for example user/alice:xpp1234 (repeatable)", collect, [])
    .option(
      "--policy <file>",
      "a policy file (YAML: admins, submitters, experiments): its admins and submitters join the mesh's own on every service, its experiments are the request service's; see docs/deployment.md",
    )
    .option(
      "--metrics-port <port>",
      "serve Prometheus metrics, each service on its own port from this one up (ca, jobs, buffer, producer, request, then the pool's other buffers); 0 picks free ones",
      parsePort,
    )
    .option("--log-file <file>", "append the services' JSON logs to this file instead of stderr")
    .action(async (o: { stateDir: string; buffers: number; grant: string[]; policy?: string; metricsPort?: number; logFile?: string }) => {
      const experiments = grantsOf(o.grant);
      // Servers, the viewer's gateway and geometry: loaded by the commands that run them (see program.ts).
      const { startLocalMesh } = await import("./local-mesh.js");
      const mesh = await startLocalMesh({ stateDir: o.stateDir, buffers: o.buffers, experiments, policyFile: o.policy, metricsPort: o.metricsPort });
      const stopped = runUntilSignal(() => mesh.close());
      const e = mesh.endpoints;
      console.log(`lclstream is up (state in ${o.stateDir}); you are ${e.user}`);
      for (const [name, url] of Object.entries(e)) if (typeof url === "string" && url.startsWith("https://")) console.log(`  ${name.padEnd(9)} ${url}`);
      for (const url of e.buffers.slice(1)) console.log(`  ${"buffer".padEnd(9)} ${url}`);
      console.log(`  cert dir  ${e.certDir}`);
      for (const [name, url] of Object.entries(e.metrics ?? {})) console.log(`  ${"metrics".padEnd(9)} ${url} (${name})`);
      if (o.logFile) console.log(`  logs      ${o.logFile}`);
      console.log(`try: lclstream get examples/crystallography.yaml --state-dir ${o.stateDir}`);
      await stopped;
    });

  connectionOptions(
    program
      .command("get")
      .description(
        "create a data request from a file (or --resume one), stream it here (writing it with --out), and check the totals; Ctrl-C detaches (the request goes on: --resume joins it again), a second Ctrl-C or --cancel-on-exit cancels it",
      )
      .argument("[request]", "a request YAML/JSON (or a bare producer config)")
      .option(
        "--resume <id>",
        "join a running request again, after this command was stopped or killed: with the same --out, what is there is not fetched again",
      )
      .option("--out <dir>", "write the batches here (with a journal of what arrived, for --resume)")
      .addOption(new Option("--format <format>", "how batches are written").choices(["native", "hdf5", "npy"]).default("native"))
      .option("--group <name>", "the consumer group to join")
      .option("--cancel-on-exit", "Ctrl-C cancels the request instead of leaving it running"),
  ).action(async (file: string | undefined, o) => {
    if (!file === !o.resume) throw new Error("give a request file to create a request, or --resume ID to join one again (not both)");
    // The file first: a missing one is known before any connection.
    const body = file ? requestFromFile(await readFile(file, "utf8")) : undefined;
    const { requests, transportFor } = await connect(o);
    let name: string;
    if (!body) name = requestName(o.resume);
    else {
      if (o.format === "hdf5" && !body.serializer) body.serializer = "SERIALIZER_HDF5";
      const created = (await requests.createDataRequest({ dataRequest: dataRequestFromJson(body) })).dataRequest!;
      name = created.name;
      for (const note of created.configNotes) console.error(`note: ${note}`);
    }
    console.error(`${name}: ${o.resume ? "resuming" : "streaming"}${o.out ? ` into ${o.out}` : ""}`);
    // Ctrl-C detaches: the request goes on and --resume joins it again. With --cancel-on-exit, or a second Ctrl-C, it cancels.
    const abort = new AbortController();
    let detached = false;
    const interrupted = () => {
      if (o.cancelOnExit || detached) {
        abort.abort();
        void requests.cancelDataRequest({ name, reason: "the consumer pressed Ctrl-C" }).finally(() => process.exit(130));
        return;
      }
      detached = true;
      abort.abort(new Error("detached"));
    };
    process.on("SIGINT", interrupted);
    let got = { events: 0, batches: 0 };
    // A bar with percent and ETA when the request knows how many events its producers will make; else counts and time.
    const total = process.stderr.isTTY ? Number((await requests.getDataRequest({ name })).dataRequest?.expectedEventCount ?? 0n) : 0;
    const bar = process.stderr.isTTY
      ? new SingleBar({
          format: total
            ? "[{bar}] {percentage}% | {value}/{total} events | {mbps} MB/s | lag {lag} batches | {duration_formatted} elapsed, ETA {eta_formatted}"
            : "{value} events | {mbps} MB/s | lag {lag} batches | {duration_formatted} elapsed",
          hideCursor: true,
          barsize: 24,
        })
      : undefined;
    bar?.start(total, 0, { mbps: 0, lag: 0 });
    const result = await fetchRequest({
      requests,
      transportFor,
      name,
      out: o.out,
      format: o.format as OutputFormat,
      group: o.group,
      signal: abort.signal,
      onProgress: (p) => {
        got = p;
        bar?.update(p.events, { mbps: (p.bytesPerSecond / 1e6).toFixed(1), lag: p.lag });
      },
    }).catch(async (error: unknown) => {
      if (!detached) throw error;
      bar?.stop();
      const id = name.replace("dataRequests/", "");
      const where = o.out ? ` --out ${o.out}` : "";
      console.error(
        `\n${name}: detached after ${got.events} events in ${got.batches} batches${o.out ? `, written to ${o.out}` : " (not written: no --out)"}; the request goes on.`,
      );
      console.error(`  resume: lclstream get --resume ${id}${where}`);
      console.error(`  cancel: lclstream requests cancel ${id}  (or press Ctrl-C again within 3 s)`);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      process.exit(130);
    });
    bar?.stop();
    process.off("SIGINT", interrupted);
    const p = result.progress;
    const resumed = p.resumedBatches ? ` (${p.resumedBatches} of them from before the resume)` : "";
    console.log(
      `${name}: ${p.events} events in ${p.batches} batches${resumed}, ${(p.bytes / 1e6).toFixed(1)} MB; ${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s over ${p.seconds.toFixed(1)} s; totals match the end of stream`,
    );
  });

  const requests = program.command("requests").description("your data requests; `requests serve` runs the data request service");
  connectionOptions(
    program
      .command("view")
      .description("open the live viewer: your requests, their throughput, groups and jobs, and the newest data, in a browser on this machine")
      .option("--port <port>", "the loopback port to serve it on", (v) => Number(v), 0)
      .option(
        "--geometry <file>",
        "a psana geometry file (calib/<group>/<source>/geometry/*.data): frames of its shape are drawn in that geometry, as psana's det.raw.image() assembles them (repeatable)",
        collect,
        [],
      ),
  ).action(async (o) => {
    const { url, certDir } = meshEndpoint("request", o);
    const tls = await readCertDir(certDir);
    const [{ startViewerGateway }, { parseGeometry, placePixels }] = await Promise.all([import("../viewer/gateway.js"), import("../viewer/psana-geometry.js")]);
    const geometries: { name: string; text: string }[] = [];
    for (const file of o.geometry as string[]) {
      const text = await readFile(file, "utf8");
      try {
        const g = placePixels(parseGeometry(text));
        console.error(`geometry ${file}: ${g.segments} x ${g.rows} x ${g.columns} pixels, drawn as ${g.width} x ${g.height}`);
      } catch (error) {
        throw new Error(`${file}: ${(error as Error).message}`);
      }
      geometries.push({ name: basename(file), text });
    }
    const viewer = await startViewerGateway({ requestUrl: url, tls, port: o.port, staticDir: join(packageInfo().root, "dist", "viewer"), geometries });
    console.log(`viewer: ${viewer.url}`);
    console.error("open that URL in a browser on this machine (it carries the access token); Ctrl-C stops the viewer");
    await runUntilSignal(() => viewer.close());
  });

  addServeOptions(requests.command("serve").description("run the data request service, orchestrating a buffer and a job queue"), "request service")
    .option(
      "--buffer-url <url>",
      "a buffer this service creates streams on; repeat it for a pool, over which requests' shards are placed (the first may sit behind --producer-buffer-url and --consumer-buffer-url)",
      collect,
      [],
    )
    .option("--jobs-url <url>", "the job queue producer jobs are submitted to")
    .option("--producer-cert-dir <dir>", "the cert directory producer jobs present to the buffer (on the nodes that run them)")
    .option("--producer-buffer-url <url>", "the buffer as producer jobs reach it (default: --buffer-url)")
    .option("--consumer-buffer-url <url>", "the buffer as consumers reach it: the front door's URL behind one (default: --buffer-url)")
    .option("--data-root <dir>", "a directory HDF5 sources may read (repeatable)", collect, [])
    .action(async (o) => {
      const base = await serveConfig(o);
      const pick = (flag: string | undefined, key: string) => flag ?? base[key];
      const { build: buildRequestService } = await import("../request/server.js");
      const server = await buildRequestService({
        ...base,
        bufferUrl: o.bufferUrl[0] ?? base.bufferUrl,
        moreBufferUrls: o.bufferUrl.length > 1 ? o.bufferUrl.slice(1) : base.moreBufferUrls,
        jobsUrl: pick(o.jobsUrl, "jobsUrl"),
        producerCertDir: pick(o.producerCertDir, "producerCertDir"),
        producerBufferUrl: pick(o.producerBufferUrl, "producerBufferUrl"),
        consumerBufferUrl: pick(o.consumerBufferUrl, "consumerBufferUrl"),
        dataRoots: o.dataRoot.length ? o.dataRoot : base.dataRoots,
      } as RequestConfig);
      await serveUntilSignal("request", server);
    });

  connectionOptions(
    requests.command("list").description("list your data requests (admins: everyone's)").option("--json", "one JSON object per request, a line each"),
  ).action(async (o) => {
    const { requests: client } = await connect(o);
    if (!o.json) console.log(["NAME", "STATE", "OWNER", "STREAM", "REASON"].join("\t"));
    let pageToken = "";
    do {
      const page = await client.listDataRequests({ pageToken, pageSize: 500 });
      for (const r of page.dataRequests)
        console.log(o.json ? asJson(DataRequestSchema, r) : [r.name, State[r.state].toLowerCase(), r.owner, r.stream, r.stateReason].join("\t"));
      pageToken = page.nextPageToken;
    } while (pageToken);
  });
  connectionOptions(requests.command("get").description("show a data request with live metrics, as JSON").argument("<id>")).action(async (id: string, o) => {
    const { requests: client } = await connect(o);
    const { dataRequest } = await client.getDataRequest({ name: requestName(id) });
    console.log(asJson(DataRequestSchema, dataRequest!, true));
  });
  connectionOptions(requests.command("watch").description("follow a data request's state and metrics until it ends").argument("<id>")).action(
    async (id: string, o) => {
      const { requests: client } = await connect(o);
      let last = State.UNSPECIFIED;
      for await (const { dataRequest: r } of client.watchDataRequest({ name: requestName(id), intervalMs: 1000 })) {
        const m = r!.metrics;
        // Elapsed since the request was created, then its totals, rate, jobs and why it is in its state.
        const created = r!.createTime ? timestampMs(r!.createTime) : Date.now();
        const fields = [
          `${((Date.now() - created) / 1000).toFixed(0)}s`,
          State[r!.state].toLowerCase(),
          `${m?.events ?? 0} events`,
          `${m?.batches ?? 0} batches`,
          `${(Number(m?.bytes ?? 0) / 1e6).toFixed(1)} MB`,
          `${((m?.bytesPerSecond ?? 0) / 1e6).toFixed(1)} MB/s`,
          m?.jobs.map((j) => `${j.job} ${j.state}`).join(", ") ?? "",
          r!.stateReason,
        ];
        console.log(fields.filter(Boolean).join("\t"));
        last = r!.state;
      }
      process.exitCode = last === State.SUCCEEDED ? 0 : 1;
    },
  );
  connectionOptions(requests.command("cancel").description("cancel a data request: its jobs stop and its stream is deleted").argument("<id>")).action(
    async (id: string, o) => {
      const { requests: client } = await connect(o);
      const { dataRequest } = await client.cancelDataRequest({ name: requestName(id), reason: "canceled from the command line" });
      console.log(`${dataRequest!.name}: ${State[dataRequest!.state].toLowerCase()}`);
    },
  );
}

/** A DataRequest from its JSON form (proto field names, snake_case or camelCase). */
function dataRequestFromJson(value: JsonObject) {
  try {
    return fromJson(DataRequestSchema, value);
  } catch (error) {
    throw new Error(`the request file is not a data request: ${(error as Error).message}`);
  }
}
