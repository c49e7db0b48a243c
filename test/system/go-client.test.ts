/** The Go client (clients/go) against the whole mesh: its tests, and its example command. */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { internalConfig } from "../helpers/producer-config.js";

const goClient = fileURLToPath(new URL("../../clients/go", import.meta.url));

function go(args: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) =>
    execFile("go", args, { cwd: goClient, env: { ...process.env, GOFLAGS: "-mod=mod", ...env }, timeout: 240_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    ),
  );
}

describe("the Go client against the real mesh", () => {
  let dir: string;
  let mesh: LocalMesh;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-go-"));
    mesh = await startLocalMesh({ stateDir: dir, buffers: 3 });
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("passes its go test: a whole request with totals checked, a sharded one, one stream by name, a bad request refused", async () => {
    const result = await go(["test", "-count=1", "-v", "./..."], { LCLSTREAM_ENDPOINTS: join(dir, "endpoints.json") });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain("--- PASS: TestConsumesAWholeRequestAndChecksTheTotals");
    expect(result.output).toContain("--- PASS: TestConsumesEveryShardOfAShardedRequest");
    expect(result.output).toContain("--- PASS: TestConsumersOfAnAssignedGroupDivideTheShards");
    expect(result.output).toContain("--- PASS: TestRefusesABadRequestWithInvalidArgument");
    expect(result.output).toContain("--- PASS: TestConsumesOneStreamByNameAndRefusesAnUnknownOne");
  }, 300_000);

  it("runs the example: subscribes and counts the bytes", async () => {
    const request = join(dir, "request.json");
    await writeFile(
      request,
      JSON.stringify({
        producer: internalConfig(50, { tof: { type: "SyntheticDigitizer", channels: 1, samples: 64 } }, { seed: 5, batchSize: 10 }),
      }),
    );
    const result = await go(["run", "./cmd/lclstream-count", "-url", mesh.endpoints.request, "-cert-dir", mesh.endpoints.certDir, request], {});
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/: 5 batches, 50 events, \d+ bytes .*totals match/);
  }, 300_000);
});
