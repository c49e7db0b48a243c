/** A job queue started with `lclstream jobs serve` under a fresh CA, and `lclstream jobs …` as user/alice. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { capture, lclstream, startLclstream } from "./cli.js";

export async function startJobQueueCli(configYaml: string) {
  const dir = await mkdtemp(join(tmpdir(), "lclstream-jobq-"));
  const state = join(dir, "state");
  await lclstream(["ca", "init", "--trust-domain", "jobq.lclstream", "--state-dir", state]);
  await lclstream(["ca", "issue", "--state-dir", state, "--identity", "service/jobs", "--ip", "127.0.0.1", "--out", join(dir, "jobs")]);
  await lclstream(["ca", "issue", "--state-dir", state, "--identity", "user/alice", "--out", join(dir, "alice")]);
  await writeFile(join(dir, "jobs.yaml"), `submitters: [user/alice]\n${configYaml}`);
  // As an operator runs it, not under npm: jobs that inherit PATH must not find node_modules/.bin's commands (its `rc`).
  const PATH = (process.env.PATH ?? "")
    .split(":")
    .filter((p) => !p.includes("node_modules"))
    .join(":");
  const serving = await startLclstream(
    ["jobs", "serve", "--config", join(dir, "jobs.yaml"), "--state-dir", state, "--cert-dir", join(dir, "jobs")],
    [/^jobs: /],
    15_000,
    { ...process.env, PATH },
  );
  const env = { LCLSTREAM_JOBS_URL: capture(serving.lines, /^jobs: (\S+)/), LCLSTREAM_CERT_DIR: join(dir, "alice") };
  const jobs = (args: string[], input?: string) => lclstream(["jobs", ...args], { env, input, timeoutMs: 30_000 });
  return {
    dir,
    env,
    jobs,
    /** Each transition `watch` printed, split into [time, run, state, info]. */
    async watch(name: string) {
      return (await jobs(["watch", name])).stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t"));
    },
    async close() {
      await serving.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
