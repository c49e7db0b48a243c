/**
 * The Python client (clients/python) against the whole mesh: the harness
 * starts the mesh, makes an enrollment token and a revoked certificate, and
 * runs the client's pytest suite with them.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { CertificateAuthorityService, RevocationReason } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { issueOffline } from "../../services/ca/offline.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransportFromCertDir } from "../../services/common/client.js";
import { writeCertDir } from "../../services/common/pki.js";

const pythonClient = fileURLToPath(new URL("../../clients/python", import.meta.url));

describe("the Python client against the real mesh", () => {
  let dir: string;
  let mesh: LocalMesh;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-python-"));
    mesh = await startLocalMesh({ stateDir: dir, buffers: 3 });
    const ca = createClient(CertificateAuthorityService, await createMeshTransportFromCertDir(mesh.endpoints.ca, mesh.endpoints.certDir));
    const { secret: token } = await ca.createEnrollmentToken({ identity: "user/py-enrolled", ttl: { seconds: 600n } });
    const revoked = await issueOffline(dir, { identity: "user/py-revoked" });
    await writeCertDir(join(dir, "revoked"), revoked);
    await ca.revoke({ serialNumber: revoked.serialNumber, reason: RevocationReason.KEY_COMPROMISE });
    env = {
      ...(process.env as Record<string, string>),
      PYTHONPATH: join(pythonClient, "src"),
      LCLSTREAM_ENDPOINTS: join(dir, "endpoints.json"),
      LCLSTREAM_TEST_TOKEN: token,
      LCLSTREAM_REVOKED_CERT_DIR: join(dir, "revoked"),
    };
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("passes its pytest suite: whole requests, HDF5, resume after a kill, enrollment, refusals", async () => {
    const result = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(
        "python3",
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "faulthandler_timeout=60", "tests", "--ignore=tests/test_torch.py"],
        { cwd: pythonClient, env, timeout: 240_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      ),
    );
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/\b21 passed\b/);
  }, 300_000);
});
