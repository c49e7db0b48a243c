/** `lclstream jobs …` as a user drives it: serve, submit a YAML spec, watch, logs, list, cancel. */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lclstream } from "../helpers/cli.js";
import { startJobQueueCli } from "../helpers/job-queue-cli.js";

describe("lclstream jobs", () => {
  let queue: Awaited<ReturnType<typeof startJobQueueCli>>;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const jobs = (...args: string[]) => lclstream(["jobs", ...args], { env });

  beforeAll(async () => {
    queue = await startJobQueueCli("backends:\n  - type: local\n");
    ({ dir, env } = queue);
  });
  afterAll(async () => {
    await queue?.close();
  });

  it("submits a YAML spec, watches it to the end and prints its output", async () => {
    const spec = join(dir, "hello.yaml");
    await writeFile(spec, 'name: hello\nscript: |\n  echo "out $jobndx"\n  echo err >&2\nresources:\n  process_count: 1\n');
    const submitted = await jobs("submit", spec);
    expect(submitted.stderr).toBe("");
    const name = submitted.stdout.trim();
    expect(name).toMatch(/^jobs\/\d+\.\d{3}$/);

    const watched = await jobs("watch", name);
    expect(watched.code).toBe(0);
    expect(
      watched.stdout
        .split("\n")
        .map((l) => l.split("\t")[2])
        .filter(Boolean),
    ).toEqual(["NEW", "QUEUED", "ACTIVE", "COMPLETED"]);
    const logs = await jobs("logs", name.slice("jobs/".length));
    expect(logs.stdout).toBe("out 1\n");
    expect(logs.stderr).toBe("err\n");
    expect((await jobs("list", "--state", "completed")).stdout).toContain(`${name}\tcompleted\t1\tlocal`);
    const ended = await jobs("cancel", name);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain("already ended COMPLETED");
  });

  it("exits non-zero from watch when the job fails, and cancels a running job", async () => {
    const failing = (await lclstream(["jobs", "submit", "-"], { env, input: 'script: "exit 2"\n' })).stdout.trim();
    expect((await jobs("watch", failing)).code).toBe(1);
    const sleeping = (await lclstream(["jobs", "submit", "-"], { env, input: 'script: "sleep 100"\n' })).stdout.trim();
    expect((await jobs("cancel", sleeping)).stdout.trim()).toBe(`${sleeping}: canceling`);
    expect((await jobs("watch", sleeping)).stdout).toContain("CANCELED");
  });

  it("says what is wrong with a bad spec", async () => {
    const unknown = await lclstream(["jobs", "submit", "-"], { env, input: "scrpt: true\n" });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('"scrpt": not a psik JobSpec field');
    const escaping = await lclstream(["jobs", "submit", "-"], { env, input: "script: 'true'\ndirectory: ../../..\n" });
    expect(escaping.stderr).toContain("spec.directory: must be a relative path that stays inside the job's work directory");
  });
});
