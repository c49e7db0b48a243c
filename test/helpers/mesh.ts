/** A whole mesh for a test file: started in a fresh directory before its tests, closed and removed after. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { startLocalMesh, type LocalMesh, type LocalMeshOptions } from "../../services/cli/local-mesh.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";

/** The mesh, its directory and the user's certificate, filled in by beforeAll. */
export interface MeshUnderTest {
  dir: string;
  mesh: LocalMesh;
  /** The `lclstream up` user's certificate (an admin of the mesh). */
  tls: CertMaterial;
}

export function useLocalMesh(options: Omit<LocalMeshOptions, "stateDir"> = {}): MeshUnderTest {
  const m = {} as MeshUnderTest;
  beforeAll(async () => {
    m.dir = await mkdtemp(join(tmpdir(), "lclstream-mesh-"));
    m.mesh = await startLocalMesh({ stateDir: m.dir, ...options });
    m.tls = await readCertDir(m.mesh.endpoints.certDir);
  }, 60_000);
  afterAll(async () => {
    await m.mesh?.close();
    if (m.dir) await rm(m.dir, { recursive: true, force: true });
  });
  return m;
}
