/** mesh/pki-init.sh, as compose runs it before the services: certificates for each, and the first admin once in the CA's life. */
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lclstreamBin } from "../helpers/cli.js";
import { run } from "../helpers/tools.js";

const script = fileURLToPath(new URL("../../mesh/pki-init.sh", import.meta.url));

describe("mesh/pki-init.sh", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-pki-init-"));
    // `lclstream` on the PATH, as in the image.
    const bin = join(dir, "bin");
    await run("mkdir", ["-p", bin]);
    await writeFile(join(bin, "lclstream"), `#!/bin/sh\nexec "${process.execPath}" "${lclstreamBin}" "$@"\n`);
    await chmod(join(bin, "lclstream"), 0o755);
    env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      LCLSTREAM_PKI_STATE: join(dir, "state"),
      LCLSTREAM_PKI_CERTS: join(dir, "certs"),
      LCLSTREAM_TRUST_DOMAIN: "test.lclstream",
      LCLSTREAM_PUBLIC_HOST: "lclstream.test",
    };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("issues every service's certificate, and the first admin's only once, even after it is deleted", { timeout: 60_000 }, async () => {
    const first = await run("sh", [script], 50_000, env);
    expect(first.code, first.stderr).toBe(0);
    for (const name of ["jobs", "producer", "request", "buffer", "buffer-1", "buffer-2", "front", "admin"])
      expect(existsSync(join(dir, "certs", name, "tls.crt")), name).toBe(true);
    // The operator copies the admin out and deletes it, as the deployment guide says; the next start makes no new admin.
    await rm(join(dir, "certs", "admin"), { recursive: true });
    const again = await run("sh", [script], 50_000, env);
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(join(dir, "certs", "admin"))).toBe(false);
    expect(existsSync(join(dir, "certs", "request", "tls.crt"))).toBe(true);
  });
});
