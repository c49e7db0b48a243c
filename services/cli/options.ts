/** Option parsing the `lclstream` commands share. */
import { homedir } from "node:os";
import { join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import { type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { parse as parseYaml } from "yaml";

const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `90s`, `30m`, `24h`, `7d` or `250ms` into milliseconds (commander argument parser). */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`"${text}" is not a duration; write a number and a unit: 250ms, 90s, 30m, 24h, 7d`);
  const ms = Math.round(Number(match[1]) * unitMs[match[2] as keyof typeof unitMs]);
  if (ms <= 0) throw new InvalidArgumentError(`"${text}" must be longer than zero`);
  return ms;
}

/** Parses a TCP port (0 picks a free one). */
export function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`"${text}" is not a port (0-65535)`);
  return port;
}

/** Parses a whole number of at least 1, up to 64 (commander argument parser). */
export function parseCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`"${text}" is not a count from 1 to 64`);
  return n;
}

/** Collects a repeatable option into a list. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Where state lives unless `--state-dir` says otherwise: `$LCLSTREAM_STATE_DIR`, else the XDG state directory. */
export function defaultStateDir(): string {
  return process.env.LCLSTREAM_STATE_DIR || join(process.env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "lclstream");
}

/**
 * Keeps a server command running until SIGINT or SIGTERM, then closes it
 * gracefully; a second signal exits at once. Call it before printing that
 * the server is ready: whoever reads that line may signal at once.
 */
export function runUntilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop).off("SIGTERM", stop);
      process.once("SIGINT", () => process.exit(130)).once("SIGTERM", () => process.exit(143));
      console.error(`${signal}: shutting down`);
      close().then(resolve, reject);
    };
    process.on("SIGINT", stop).on("SIGTERM", stop);
  });
}

/** Prints where a server listens and keeps it up until SIGINT or SIGTERM (every `… serve` command). */
export async function serveUntilSignal(name: string, server: { url: string; metricsUrl?: string; close(): Promise<void> }): Promise<void> {
  const stopped = runUntilSignal(() => server.close());
  console.log(`${name}: ${server.url} (mTLS)`);
  if (server.metricsUrl) console.log(`${name} metrics: ${server.metricsUrl}`);
  await stopped;
}

/** All of standard input, as text (for `-` arguments). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Flags every `… serve` command takes. */
export function addServeOptions(command: Command, what: string): Command {
  return command
    .option("--config <file>", `YAML or JSON with the ${what}'s settings (see docs/deployment.md); flags override it`)
    .option("--state-dir <dir>", "state directory", defaultStateDir())
    .option("--cert-dir <dir>", "the service's cert directory")
    .option("--ca-url <url>", "the CA's mTLS endpoint: renew the certificate, follow revocations")
    .option("--host <address>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port (0 picks one)", parsePort, 0)
    .option("--admin <id>", "an admin identity (repeatable)", collect, [])
    .option("--submitter <id>", "an identity this server serves as a submitter, as it serves the request service (repeatable)", collect, [])
    .option("--metrics-port <port>", "serve Prometheus metrics on this port", parsePort)
    .option(
      "--metrics-host <address>",
      "address the metrics port binds (default 127.0.0.1; 0.0.0.0 for a Prometheus elsewhere: plain HTTP, so keep it on a private network)",
    )
    .option("--log-file <file>", "append the JSON logs to this file instead of stderr")
    .option("--proxy-identity <uri>", "the front proxy's identity, allowed to forward client identities (x-forwarded-client-cert)");
}

/** The settings of a `… serve` command: its config file, with the flags on top. */
// biome-ignore lint/suspicious/noExplicitAny: commander's options and a YAML file, both untyped; each service's build validates what it takes
export async function serveConfig(o: Record<string, any>): Promise<Record<string, any>> {
  // biome-ignore lint/suspicious/noExplicitAny: as above
  const file = o.config ? ((parseYaml(await readFile(o.config, "utf8")) ?? {}) as Record<string, any>) : {};
  // --log-file is taken before any action (program.ts); a config file may name one too.
  if (!o.logFile && file.logFile) process.env.LCLSTREAM_LOG_FILE = file.logFile;
  return {
    ...file,
    stateDir: file.stateDir ?? o.stateDir,
    certDir: o.certDir ?? file.certDir,
    caUrl: o.caUrl ?? file.caUrl,
    host: o.host,
    port: o.port,
    metricsPort: o.metricsPort ?? file.metricsPort,
    metricsHost: o.metricsHost ?? file.metricsHost,
    proxyIdentity: o.proxyIdentity ?? file.proxyIdentity,
    admins: [...(file.admins ?? []), ...o.admin],
    submitters: [...(file.submitters ?? []), ...o.submitter],
  };
}

/** The endpoints the running `lclstream up` wrote in its state directory, if it runs there. */
function upEndpoints(stateDir = defaultStateDir()): Partial<Record<MeshService | "enroll" | "certDir", string>> | undefined {
  const file = join(stateDir, "endpoints.json");
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
}

/** The CA's enrollment endpoint (it takes no client certificate): the flag, then $LCLSTREAM_ENROLL_URL, then the running `lclstream up`'s. */
export function enrollEndpoint(url: string | undefined, stateDir?: string): string {
  const found = url ?? process.env.LCLSTREAM_ENROLL_URL ?? upEndpoints(stateDir)?.enroll;
  if (!found) throw new Error("no enrollment endpoint found: pass --url https://CA:PORT (the CA's enrollment port), or set LCLSTREAM_ENROLL_URL");
  return found;
}

/** The services of the mesh a command can be pointed at. */
export type MeshService = "request" | "buffer" | "jobs" | "ca" | "producer";

/**
 * Adds --url, --cert-dir and --state-dir to a command: every client command
 * finds its service the same way (see {@link meshEndpoint}).
 */
export function meshOptions(c: Command, service: MeshService, what: string): Command {
  return c
    .option("--url <url>", `${what}, https://HOST:PORT (default: $LCLSTREAM_${service.toUpperCase()}_URL, or the running \`lclstream up\`'s)`)
    .option("--cert-dir <dir>", "your cert directory: ca.crt, tls.crt, tls.key (default: $LCLSTREAM_CERT_DIR, or the `lclstream up` user's)")
    .option("--state-dir <dir>", "the `lclstream up` state directory, whose endpoints.json names the services", defaultStateDir());
}

/**
 * Where a command's service is, and the cert directory to call it with: the
 * flag, then the environment (LCLSTREAM_<SERVICE>_URL, LCLSTREAM_CERT_DIR),
 * then the endpoints of the running `lclstream up`.
 */
export function meshEndpoint(service: MeshService, o: { url?: string; certDir?: string; stateDir?: string }): { url: string; certDir: string } {
  const up = upEndpoints(o.stateDir);
  const variable = `LCLSTREAM_${service.toUpperCase()}_URL`;
  const url = o.url ?? process.env[variable] ?? up?.[service];
  const certDir = o.certDir ?? process.env.LCLSTREAM_CERT_DIR ?? up?.certDir;
  if (!url || !certDir) {
    throw new Error(
      `no ${service} service found: start the mesh with \`lclstream up\`, or pass --url and --cert-dir (or set ${variable} and LCLSTREAM_CERT_DIR)`,
    );
  }
  return { url, certDir };
}

/**
 * A resource as the command line prints JSON: the proto's own field names
 * (snake_case, as a producer config inside it is written), so one spelling
 * throughout; `pretty` for one object, else one line (`--json` on lists).
 */
export function asJson<D extends DescMessage>(schema: D, message: MessageShape<D>, pretty = false): string {
  return toJsonString(schema, message, { useProtoFieldName: true, ...(pretty ? { prettySpaces: 2 } : {}) });
}
