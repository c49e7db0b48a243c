/** A job queue config takes psik's own psik.json: its `prefix` and its backends by name, with BackendConfig's fields. */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { jobsConfigSchema } from "../../services/jobs/server.js";

const fixture = async (name: string) =>
  JSON.parse((await readFile(fileURLToPath(new URL(`../fixtures/psik/${name}`, import.meta.url)), "utf8")).replace("%s", "/srv/psik"));

describe("psik's configs", () => {
  it("reads psik's README config and its test config as they are", async () => {
    const readme = jobsConfigSchema.parse(await fixture("psik-config-readme.json"));
    expect(readme.stateDir).toBe("/tmp/.psik");
    expect(readme.backends).toEqual([{ type: "local", name: "default", projectName: "project_automate", attributes: { "-b": "packed:rs" } }]);
    const tests = jobsConfigSchema.parse(await fixture("psik-config-tests-test_config.json.tmpl"));
    expect(tests).toMatchObject({ stateDir: "/srv/psik", backends: [{ type: "local", name: "default", projectName: "my_proj" }] });
  });

  it("reads a Slurm backend written as psik writes BackendConfig, and this project's list as before", () => {
    const psik = jobsConfigSchema.parse({
      prefix: "/srv/jobs",
      backends: { milano: { type: "slurm", queue_name: "milano", project_name: "lcls:mfx101", reservation_id: "beamtime", attributes: { "--qos": "normal" } } },
    });
    expect(psik.backends).toEqual([
      {
        type: "slurm",
        name: "milano",
        queueName: "milano",
        projectName: "lcls:mfx101",
        reservationId: "beamtime",
        attributes: { "--qos": "normal" },
        pollMs: 1000,
      },
    ]);
    expect(
      jobsConfigSchema.parse({ stateDir: "/srv", backends: [{ type: "local" }, { type: "slurm", queueName: "milano" }] }).backends.map((b) => b.name),
    ).toEqual(["local", "slurm"]);
  });

  it("refuses psik's backends it does not run, and fields BackendConfig does not have, saying which", async () => {
    const globus = jobsConfigSchema.safeParse(await fixture("psik-config-docs-globus.json"));
    expect(globus.success).toBe(false);
    expect(globus.error!.issues[0]).toMatchObject({
      path: ["backends", 0, "type"],
      message: expect.stringContaining("psik's other backends, such as nersc or globus, are not run here"),
    });
    const typo = jobsConfigSchema.safeParse({ stateDir: "/srv", backends: { default: { type: "local", queue: "x" } } });
    expect(typo.error!.issues[0]).toMatchObject({ code: "unrecognized_keys", keys: ["queue"] });
  });
});
