/** A real CA on a temporary state directory, with an admin certificate issued offline. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initAuthority } from "../../services/ca/authority.js";
import { issueOffline } from "../../services/ca/offline.js";
import { build, type CaConfig, type CaServer } from "../../services/ca/server.js";
import { createLogger } from "../../services/common/logger.js";
import type { CertMaterial } from "../../services/common/pki.js";

export const caTrustDomain = "ca-test.lclstream";

export interface TestCa {
  stateDir: string;
  server: CaServer;
  admin: CertMaterial & { serialNumber: string };
  /** Starts the CA again on the same state directory (after `server.close()`). */
  restart(): Promise<CaServer>;
  cleanup(): Promise<void>;
}

export async function startTestCa(options: Partial<CaConfig> = {}): Promise<TestCa> {
  const stateDir = await mkdtemp(join(tmpdir(), "lclstream-ca-"));
  await initAuthority(stateDir, caTrustDomain);
  const admin = await issueOffline(stateDir, { identity: "user/admin" });
  const config = { stateDir, admins: ["user/admin"], ...options };
  const ca: TestCa = {
    stateDir,
    admin,
    server: await build(config, createLogger("ca")),
    async restart() {
      ca.server = await build(config, createLogger("ca"));
      return ca.server;
    },
    async cleanup() {
      await ca.server.close().catch(() => undefined);
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  return ca;
}
