/** `lclstream jobs …`: run the job queue, and submit, follow and cancel jobs on it. */
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Argument, type Command, Option } from "commander";
import { createClient } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { parse as parseYaml } from "yaml";
import { JobQueueService, JobSchema, JobSpecSchema, Job_State as State, LogStream } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { createMeshTransportFromCertDir } from "../common/client.js";
import { reportReached } from "../jobs/job-dir.js";
import { psikStateNames } from "../jobs/job-states.js";
import { readJobSpecDocument } from "../jobs/psik-spec.js";
import type { JobsConfig } from "../jobs/server.js";
import { addServeOptions, asJson, readStdin, serveConfig, serveUntilSignal, meshEndpoint, meshOptions } from "./options.js";

async function jobsClient(o: { url?: string; certDir?: string; stateDir?: string }) {
  const { url, certDir } = meshEndpoint("jobs", o);
  return createClient(JobQueueService, await createMeshTransportFromCertDir(url, certDir));
}

/** `ID` or `jobs/ID` as a resource name. */
const jobName = (id: string) => (id.startsWith("jobs/") ? id : `jobs/${id}`);
const time = (t: Timestamp | undefined) => (t ? new Date(timestampMs(t)).toISOString() : "");

/** Reads a JobSpec from YAML or JSON, as psik writes it (or with the proto's field names). */
async function readSpec(path: string) {
  const text = path === "-" ? await readStdin() : await readFile(path, "utf8");
  try {
    const { spec, notes } = readJobSpecDocument(parseYaml(text));
    for (const note of notes) console.error(`${path}: ${note}`);
    return create(JobSpecSchema, spec);
  } catch (error) {
    throw new Error(`${path} is not a job spec: ${(error as Error).message}`);
  }
}

export function registerJobsCommands(program: Command): void {
  const jobs = program.command("jobs").description("the job queue: run it, submit jobs, follow and cancel them");

  addServeOptions(jobs.command("serve").description("run the job queue (local backend by default; Slurm backends from --config)"), "job queue").action(
    async (o) => {
      const { build } = await import("../jobs/server.js"); // the server's code, only to serve
      const server = await build((await serveConfig(o)) as JobsConfig);
      await serveUntilSignal("jobs", server);
    },
  );

  jobs
    .command("backends")
    .description("list the backends jobs can run on")
    .action(async (o) => {
      for (const b of (await (await jobsClient(o)).listBackends({})).backends) {
        console.log([b.name, b.available ? "available" : "unavailable", b.statusMessage].join("\t"));
      }
    });

  jobs
    .command("submit")
    .description("submit a job from a JobSpec file (YAML or JSON; - reads standard input); prints its name")
    .argument("<spec>", "the JobSpec file")
    .option("--backend <name>", "run on this backend instead of the spec's")
    .option("--request-id <id>", "an idempotency key: submitting again with it returns the same job")
    .action(async (path: string, o) => {
      const spec = await readSpec(path);
      if (o.backend) spec.backend = o.backend;
      const { job } = await (await jobsClient(o)).submitJob({ spec, requestId: o.requestId ?? "" });
      console.log(job!.name);
    });

  jobs
    .command("list")
    .description("list your jobs (admins: everyone's, or --owner)")
    .addOption(new Option("--state <state>", "only jobs in this state").choices(["new", "queued", "active", "completed", "failed", "canceled"]))
    .option("--backend <name>", "only jobs on this backend")
    .option("--owner <id>", "only this owner's jobs (admins)")
    .option("--json", "one JSON object per job, a line each")
    .action(async (o) => {
      const client = await jobsClient(o);
      const state = o.state ? State[o.state.toUpperCase() as keyof typeof State] : State.UNSPECIFIED;
      if (!o.json) console.log(["NAME", "STATE", "RUN", "BACKEND", "OWNER", "CREATED", "JOB NAME"].join("\t"));
      let pageToken = "";
      do {
        const page = await client.listJobs({ state, backend: o.backend ?? "", owner: o.owner ?? "", pageToken, pageSize: 500 });
        for (const j of page.jobs) {
          if (o.json) console.log(asJson(JobSchema, j));
          else
            console.log(
              [j.name, State[j.state].toLowerCase(), j.jobndx, j.spec?.backend || "local", j.owner, time(j.createTime), j.spec?.name ?? ""].join("\t"),
            );
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
    });

  jobs
    .command("get")
    .description("show a job with its spec and history, as JSON")
    .argument("<id>", "the job, ID or jobs/ID")
    .action(async (id: string, o) => {
      const { job } = await (await jobsClient(o)).getJob({ name: jobName(id) });
      console.log(asJson(JobSchema, job!, true));
    });

  jobs
    .command("watch")
    .description("print a job's transitions until it ends; exits 0 only when it completed")
    .argument("<id>", "the job, ID or jobs/ID")
    .action(async (id: string, o) => {
      let last = State.UNSPECIFIED;
      for await (const { transition: t } of (await jobsClient(o)).watchJob({ name: jobName(id) })) {
        console.log([time(t!.time), `run ${t!.jobndx}`, State[t!.state], t!.info].join("\t"));
        last = t!.state;
      }
      process.exitCode = last === State.COMPLETED ? 0 : 1;
    });

  jobs
    .command("logs")
    .description("print a job's output (stdout to stdout, stderr to stderr)")
    .argument("<id>", "the job, ID or jobs/ID")
    .option("-f, --follow", "keep printing until the run ends")
    .option("--run <n>", "which run (jobndx); default the current one", (v) => Number(v), 0)
    .addOption(new Option("--stream <stream>", "only one output").choices(["stdout", "stderr"]))
    .action(async (id: string, o) => {
      const log = o.stream === "stdout" ? LogStream.STDOUT : o.stream === "stderr" ? LogStream.STDERR : LogStream.UNSPECIFIED;
      const stream = (await jobsClient(o)).streamJobLogs({ name: jobName(id), follow: Boolean(o.follow), jobndx: o.run, log });
      for await (const chunk of stream) (chunk.log === LogStream.STDERR ? process.stderr : process.stdout).write(chunk.data);
    });

  jobs
    .command("start")
    .description("run a finished job again, as a new run (psik's start)")
    .argument("<id>", "the job, ID or jobs/ID")
    .action(async (id: string, o) => {
      const { job } = await (await jobsClient(o)).startJob({ name: jobName(id) });
      console.log(`${job!.name}: run ${job!.jobndx} ${State[job!.state].toLowerCase()}`);
    });

  jobs
    .command("reached")
    .description("from inside a job: report that its run reached a state (psik's reached), for example completed before cleaning up")
    .addArgument(new Argument("<state>", "the state").choices(psikStateNames))
    .argument("[info]", "what to say with it", "")
    .addOption(new Option("--base <dir>", "the job's directory").env("base").makeOptionMandatory())
    .addOption(new Option("--jobndx <n>", "the run").env("jobndx").argParser(Number).makeOptionMandatory())
    .action(async (state: string, info: string, o) => {
      if (!existsSync(join(o.base, "reports"))) throw new Error(`${o.base} is not a job's directory (it has no reports/); run this inside a job`);
      await reportReached(o.base, o.jobndx, state, info);
    });

  jobs
    .command("cancel")
    .description("cancel a job: its processes (or Slurm job) are stopped")
    .argument("<id>", "the job, ID or jobs/ID")
    .action(async (id: string, o) => {
      const { job } = await (await jobsClient(o)).cancelJob({ name: jobName(id) });
      console.log(`${job!.name}: ${job!.state === State.CANCELED ? "canceled" : "canceling"}`);
    });
  // Every client command finds the job queue as the others find theirs.
  for (const c of jobs.commands) if (!["serve", "reached"].includes(c.name())) meshOptions(c, "jobs", "the job queue");
}
