/**
 * The Python client's PyTorch datasets (clients/python, `lclstream_client.torch`)
 * against the whole mesh, in the environment scripts/install-system-deps.sh
 * makes with `pip install "./clients/python[torch,hdf5,test]"` (.tools/torch):
 * DataLoader workers and ranks sharing a stream, a worker killed mid-epoch,
 * tensors, HDF5, resume, and the training example learning hits.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";

const pythonClient = fileURLToPath(new URL("../../clients/python", import.meta.url));
const torchPython = fileURLToPath(new URL("../../.tools/torch/bin/python", import.meta.url));

describe("the Python client's torch datasets against the real mesh", () => {
  let dir: string;
  let mesh: LocalMesh;

  beforeAll(async () => {
    expect(existsSync(torchPython), "scripts/install-system-deps.sh makes .tools/torch").toBe(true);
    dir = await mkdtemp(join(tmpdir(), "lclstream-torch-"));
    mesh = await startLocalMesh({ stateDir: dir, buffers: 3 });
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("passes tests/test_torch.py: every event once across workers and ranks, after a kill, large tensors through shared memory, and a model that learns", async () => {
    const result = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(
        torchPython,
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "faulthandler_timeout=240", "tests/test_torch.py"],
        {
          cwd: pythonClient,
          // The working tree's client over the installed one: the install proves the package, this tests the code.
          env: { ...(process.env as Record<string, string>), PYTHONPATH: join(pythonClient, "src"), LCLSTREAM_ENDPOINTS: join(dir, "endpoints.json") },
          timeout: 600_000,
        },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      ),
    );
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/\b14 passed\b/);
  }, 660_000);
});
