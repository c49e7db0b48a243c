/**
 * The Connect conformance suite (connectrpc.com/conformance, its runner
 * connectconformance from scripts/install-system-deps.sh) against the
 * project's own server and client paths, with the programs, configs and
 * known-failing lists in test/conformance/ (built to dist/test/conformance/):
 *
 * - createServer as the project runs it, every call through connect-node
 *   (Connect, gRPC and gRPC-Web; proto and JSON);
 * - createServer with every method on the direct data path (direct-grpc.ts;
 *   gRPC, proto);
 * - createMeshTransport, and the direct data path's client calls
 *   (direct-transport.ts), against the suite's reference servers (gRPC, proto).
 *
 * The runner writes its report to stdout only; it runs in a temporary
 * directory all the same, removed afterwards.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tool } from "../helpers/tools.js";

const sources = fileURLToPath(new URL("../conformance", import.meta.url));
const programs = fileURLToPath(new URL("../../dist/test/conformance", import.meta.url));

/** RPCs in flight at once: the cases mostly wait (delays, timeouts), so a little above the 2 cores CI has. */
const parallel = "4";

interface ConformancePath {
  name: string;
  mode: "server" | "client";
  /** test/conformance/<mode>-<config>.yaml, known-failing-<mode>-<config>.txt (and known-flaky-…, when present). */
  config: string;
  /** The program in dist/test/conformance/ and its arguments. */
  program: string[];
}

const paths: ConformancePath[] = [
  { name: "createServer through connect-node (Connect, gRPC, gRPC-Web)", mode: "server", config: "connect", program: ["server.js"] },
  { name: "createServer on the direct data path (direct-grpc.ts)", mode: "server", config: "direct", program: ["server.js", "--direct"] },
  {
    name: "createMeshTransport (connect's gRPC transport)",
    mode: "client",
    config: "mesh",
    program: ["client.js", "--transport", "mesh", "--parallel", parallel],
  },
  {
    name: "the direct data path's client calls (direct-transport.ts)",
    mode: "client",
    config: "direct",
    program: ["client.js", "--transport", "direct", "--parallel", parallel],
  },
];

function runConformance(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) =>
    execFile(tool("connectconformance"), args, { cwd, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout + stderr }),
    ),
  );
}

describe("the Connect conformance suite", () => {
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(join(programs, "server.js"))) throw new Error(`${programs} is not built: run npm run build (npm run test:system does)`);
    dir = await mkdtemp(join(tmpdir(), "lclstream-conformance-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const path of paths) {
    it(`passes against ${path.name}`, async () => {
      const base = `${path.mode}-${path.config}`;
      const flaky = join(sources, `known-flaky-${base}.txt`);
      const args = [
        "--mode",
        path.mode,
        "--conf",
        join(sources, `${base}.yaml`),
        "--known-failing",
        `@${join(sources, `known-failing-${base}.txt`)}`,
        ...(existsSync(flaky) ? ["--known-flaky", `@${flaky}`] : []),
        // In client mode the client program sets its own parallelism (--parallel above).
        ...(path.mode === "server" ? ["--parallel", parallel, "--max-servers", "2"] : []),
        "--",
        process.execPath,
        ...path.program.map((arg, i) => (i === 0 ? join(programs, arg) : arg)),
      ];
      const { code, output } = await runConformance(args, dir);
      const summary = /Total cases: (\d+)\n(\d+) passed, (\d+) failed/.exec(output);
      expect(summary, output).not.toBeNull();
      const [, total, passed, failed] = summary!.map(Number);
      expect(failed, output).toBe(0);
      expect(code, output).toBe(0);
      expect(total, output).toBeGreaterThan(100);
      expect(passed, output).toBeGreaterThan(0);
    }, 600_000);
  }
});
