/**
 * The whole mesh in one process on loopback (`lclstream up`, the demo, the
 * end-to-end tests): CA, job queue (local backend), buffer, producer and
 * request service, each on its own mTLS port, with a dev PKI made in the
 * state directory on first start and a certificate for the local user. The
 * buffer can run as a process of its own instead, for tests that crash it.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { initAuthority } from "../ca/authority.js";
import { issueOffline } from "../ca/offline.js";
import { build as buildCa } from "../ca/server.js";
import { build as buildJobs, type JobsConfig } from "../jobs/server.js";
import { build as buildBuffer } from "../buffer/server.js";
import { build as buildProducer } from "../producer/server.js";
import { build as buildRequest } from "../request/server.js";
import { identityUri } from "../common/identity.js";
import { createLogger } from "../common/logger.js";
import { Policy } from "../common/policy.js";
import { packageInfo } from "../common/package-info.js";
import { readCertDir, writeCertDir } from "../common/pki.js";
import { describeCertificate } from "../common/renewal.js";

export const localTrustDomain = "local.lclstream";

/** Where a local mesh's jobs may send callbacks: this machine only. */
export const loopbackCallbackPrefixes = [
  "http://127.0.0.1:",
  "http://localhost:",
  "http://[::1]:",
  "https://127.0.0.1:",
  "https://localhost:",
  "https://[::1]:",
];

/** Where each service listens, and the local user's cert directory: written to `<state-dir>/endpoints.json`. */
export interface Endpoints {
  ca: string;
  enroll: string;
  jobs: string;
  buffer: string;
  /** Every buffer of the pool, `buffer` first. */
  buffers: string[];
  producer: string;
  request: string;
  /** The local user's cert directory. */
  certDir: string;
  user: string;
  /** Each service's Prometheus endpoint, when the mesh serves metrics. */
  metrics?: Record<string, string>;
}

export interface LocalMesh {
  endpoints: Endpoints;
  /** Stops one service and starts it again on the same port with the same state, as an operator's restart does. */
  restart(service: RestartableService): Promise<void>;
  /**
   * SIGKILLs a buffer (the first needs `bufferProcess`; the others always run
   * as processes) and, unless `restart` is false, starts it again on the same
   * port with the same state: a crash.
   */
  crashBuffer(index?: number, restart?: boolean): Promise<void>;
  close(): Promise<void>;
}

export type RestartableService = "jobs" | "buffer" | "producer" | "request";

interface Running {
  url: string;
  metricsUrl?: string;
  close(): Promise<void>;
  /** Ends the service at once, as a crash would (only a service in its own process can). */
  kill?(): Promise<void>;
}

/** The local user's identity name, as a certificate can carry it. */
export function localUserName(): string {
  return (
    userInfo()
      .username.toLowerCase()
      .replace(/[^a-z0-9._-]/g, "-") || "user"
  );
}

export interface LocalMeshOptions {
  stateDir: string;
  logLevel?: string;
  submitters?: string[];
  /** How long a data request may go without a consumer (default: the request service's). */
  abandonAfterMs?: number;
  /** How often quiet subscriptions get a heartbeat (default: the buffer's). */
  heartbeatMs?: number;
  /**
   * A front proxy at `url`: a certificate is made for it as service/front in
   * `<state-dir>/certs/front`, the services accept its x-forwarded-client-cert,
   * and consumers are told to reach the buffer through it.
   */
  front?: { url: string };
  /** Who may request data of which experiment (a policy file's `experiments`); admins may always. */
  experiments?: Record<string, string[]>;
  /** A policy file (see services/common/policy.ts): its admins and submitters are every service's, beside the mesh's own; its experiments the request service's. */
  policyFile?: string;
  /** Serve Prometheus metrics: each service on a port of its own from this one up (ca, jobs, buffer, producer, request), or any free ones with 0. */
  metricsPort?: number;
  /** The job queue's backends (default: local processes), for example Slurm with its SLURM_CONF. */
  jobBackends?: JobsConfig["backends"];
  /** Runs the buffer as its own process (`lclstream buffer serve`), so that it can be killed like a real one. */
  bufferProcess?: boolean;
  /** How many buffers the request service places streams on (default 1); the ones after the first run as processes of their own. */
  buffers?: number;
}

export async function startLocalMesh(options: LocalMeshOptions): Promise<LocalMesh> {
  const stateDir = resolve(options.stateDir);
  const logLevel = options.logLevel ?? process.env.LCLSTREAM_LOG_LEVEL ?? "warn";
  const logger = (name: string) => createLogger(name, logLevel);
  if (!existsSync(join(stateDir, "ca", "ca.key"))) await initAuthority(stateDir, localTrustDomain);
  const certs = join(stateDir, "certs");
  // Service certificates are made fresh at each start; the user's is kept while it has an hour left.
  for (const name of ["jobs", "buffer", "producer", "request", ...(options.front ? ["front"] : [])]) {
    await writeCertDir(join(certs, name), await issueOffline(stateDir, { identity: `service/${name}`, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] }));
  }
  const user = localUserName();
  const userDir = join(certs, "user");
  const current = existsSync(join(userDir, "tls.crt")) ? describeCertificate((await readCertDir(userDir)).certPem) : undefined;
  if (!current || current.notAfter - Date.now() < 3_600_000) await writeCertDir(userDir, await issueOffline(stateDir, { identity: `user/${user}` }));

  // A policy file given is read first: a mistake in it stops the mesh before anything starts. Its admins and submitters are every service's.
  const given = options.policyFile ? parseYaml(await readFile(options.policyFile, "utf8")) : undefined;
  if (options.policyFile) Policy.parse(JSON.stringify(given ?? {}), localTrustDomain, options.policyFile);
  const admins = [...new Set([`user/${user}`, ...(given?.admins ?? [])])];
  const submitters = [...new Set(["service/request", ...(options.submitters ?? []), ...(given?.submitters ?? [])])];
  const proxyIdentity = options.front ? identityUri(localTrustDomain, "service", "front") : undefined;
  const metricsPortOf = (service: "ca" | RestartableService) =>
    options.metricsPort ? options.metricsPort + ["ca", "jobs", "buffer", "producer", "request"].indexOf(service) : options.metricsPort;
  const ca = await buildCa({ stateDir, admins, proxyIdentity, metricsPort: metricsPortOf("ca") }, logger("ca"));
  const deps = async (name: string) => ({ revocations: ca.revocations, tls: await readCertDir(join(certs, name)), logger: logger(name) });
  /** `lclstream buffer serve` in a process of its own, on `port`, keeping its state in `dir`, with metrics on `metricsPort` if given. */
  const bufferInProcess = (dir: string, port: number, metricsPort?: number) =>
    serveInProcess(
      [
        "buffer",
        "serve",
        "--state-dir",
        dir,
        "--cert-dir",
        join(certs, "buffer"),
        "--ca-url",
        ca.url,
        "--port",
        String(port),
        ...admins.flatMap((a) => ["--admin", a]),
        ...submitters.flatMap((s) => ["--submitter", s]),
        ...(proxyIdentity ? ["--proxy-identity", proxyIdentity] : []),
        ...(metricsPort === undefined ? [] : ["--metrics-port", String(metricsPort)]),
      ],
      logLevel,
    );
  // The pool's other buffers, each with a state directory of its own, started before the request service.
  const moreBuffers: Running[] = [];
  const moreBufferDir = (i: number) => join(stateDir, "buffers", String(i + 1));
  // Each service's build at a port (0 at first start, its own port at a restart), in start order.
  const urls = {} as Record<RestartableService, string>;
  const builders: Record<RestartableService, (port: number) => Promise<Running>> = {
    jobs: async (port) =>
      buildJobs(
        // On one machine, psik's callback examples (to a receiver on loopback) run as they are.
        {
          stateDir,
          admins,
          submitters,
          port,
          proxyIdentity,
          backends: options.jobBackends,
          callbackUrlPrefixes: loopbackCallbackPrefixes,
          metricsPort: metricsPortOf("jobs"),
        },
        await deps("jobs"),
      ),
    buffer: async (port) =>
      options.bufferProcess
        ? bufferInProcess(stateDir, port)
        : buildBuffer(
            { stateDir, admins, submitters, port, proxyIdentity, heartbeatMs: options.heartbeatMs, metricsPort: metricsPortOf("buffer") },
            await deps("buffer"),
          ),
    producer: async (port) =>
      buildProducer({ dataRoots: [stateDir], admins, submitters, port, proxyIdentity, metricsPort: metricsPortOf("producer") }, await deps("producer")),
    request: async (port) =>
      buildRequest(
        {
          stateDir,
          admins,
          ...(options.experiments || options.policyFile ? { policyFile: await writePolicy() } : {}),
          port,
          proxyIdentity,
          bufferUrl: urls.buffer,
          moreBufferUrls: moreBuffers.map((b) => b.url),
          consumerBufferUrl: options.front?.url,
          jobsUrl: urls.jobs,
          producerCertDir: join(certs, "producer"),
          dataRoots: [stateDir],
          abandonAfterMs: options.abandonAfterMs,
          metricsPort: metricsPortOf("request"),
        },
        await deps("request"),
      ),
  };
  /** The request service's policy: the admins and submitters as above, the policy file's, and the experiments granted. */
  const writePolicy = async () => {
    const file = join(stateDir, "policy.json");
    const experiments: Record<string, string[]> = { ...given?.experiments };
    for (const [name, ids] of Object.entries(options.experiments ?? {})) experiments[name] = [...new Set([...(experiments[name] ?? []), ...ids])];
    await writeFile(file, `${JSON.stringify({ admins, submitters, experiments }, null, 2)}\n`);
    return file;
  };
  const running = new Map<RestartableService, Running>();
  const closeAll = async () => {
    // The request service first, the CA last: nothing is left calling a stopped service.
    for (const service of [...running.values()].reverse()) await service.close().catch(() => undefined);
    running.clear();
    await Promise.all(moreBuffers.map((b) => b.close().catch(() => undefined)));
    await ca.close();
  };
  try {
    // The pool's other buffers serve metrics on the ports after the request service's.
    const moreMetricsPort = (i: number) => (options.metricsPort ? options.metricsPort + 5 + i : options.metricsPort);
    for (let i = 0; i < (options.buffers ?? 1) - 1; i++) moreBuffers.push(await bufferInProcess(moreBufferDir(i), 0, moreMetricsPort(i)));
    for (const name of Object.keys(builders) as RestartableService[]) {
      const service = await builders[name](0);
      running.set(name, service);
      urls[name] = service.url;
    }
    const endpoints: Endpoints = {
      ca: ca.url,
      enroll: ca.enrollUrl,
      ...urls,
      buffers: [urls.buffer, ...moreBuffers.map((b) => b.url)],
      certDir: userDir,
      user: `spiffe://${localTrustDomain}/user/${user}`,
    };
    const metrics = Object.fromEntries(
      [
        ["ca", ca.metricsUrl] as const,
        ...[...running].map(([name, service]) => [name, service.metricsUrl] as const),
        ...moreBuffers.map((b, i) => [`buffer-${i + 1}`, b.metricsUrl] as const),
      ].filter(([, url]) => url),
    ) as Record<string, string>;
    if (Object.keys(metrics).length) endpoints.metrics = metrics;
    await writeFile(join(stateDir, "endpoints.json"), `${JSON.stringify(endpoints, null, 2)}\n`);
    return {
      endpoints,
      async restart(name) {
        await running.get(name)!.close();
        running.set(name, await builders[name](Number(new URL(urls[name]).port)));
      },
      async crashBuffer(index = 0, restart = true) {
        const buffer = index ? moreBuffers[index - 1]! : running.get("buffer")!;
        if (!buffer.kill) throw new Error("only a buffer in its own process can be killed: start the mesh with bufferProcess");
        await buffer.kill();
        if (!restart) return;
        const port = Number(new URL(buffer.url).port);
        if (index) moreBuffers[index - 1] = await bufferInProcess(moreBufferDir(index - 1), port, moreMetricsPort(index - 1));
        else running.set("buffer", await builders.buffer(port));
      },
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * Runs an `lclstream … serve` command as a child process; resolves once it
 * prints its URL (`<name>: https://host:port (mTLS)`).
 */
function serveInProcess(args: string[], logLevel: string): Promise<Running> {
  // At the level of the services in this process (the buffer's own default is info).
  const env = { ...process.env, LCLSTREAM_LOG_LEVEL: logLevel };
  const child = spawn(process.execPath, [join(packageInfo().root, "bin", "lclstream.js"), ...args], { stdio: ["ignore", "pipe", "inherit"], env });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = (signal: NodeJS.Signals) => async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const url = /^\S+: (https:\/\/\S+) \(mTLS\)$/m.exec(out)?.[1];
      const metricsUrl = /^\S+ metrics: (http:\/\/\S+)$/m.exec(out)?.[1];
      if (!url || (args.includes("--metrics-port") && !metricsUrl)) return;
      child.stdout!.off("data", onData);
      child.stdout!.resume();
      resolve({ url, metricsUrl, close: stop("SIGTERM"), kill: stop("SIGKILL") });
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`lclstream ${args.slice(0, 2).join(" ")} exited with ${code} before serving`)));
  });
}
