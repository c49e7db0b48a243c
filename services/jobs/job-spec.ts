/** Checks a submitted JobSpec, naming every field that is wrong and what is allowed. */
import { isAbsolute, normalize } from "node:path";
import type { JobSpec } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import type { FieldViolation } from "../common/errors.js";
import type { JobBackend } from "./backend.js";
import { refuseCallbackHeader, refuseCallbackUrl } from "./callbacks.js";

/** What a spec is checked against: the job queue's backends and where it sends callbacks. */
export interface JobSpecContext {
  backends: ReadonlyMap<string, JobBackend>;
  /** The backend a spec's `backend` names (`default` and empty are the default one). */
  backendName(name: string): string;
  callbackPrefixes: string[];
}

const limits = {
  nameChars: 200,
  scriptBytes: 1024 * 1024,
  processCount: 100_000,
  nodeCount: 10_000,
  durationMinutes: 366 * 24 * 60,
  maxRestarts: 100,
  urlChars: 2048,
  secretChars: 1024,
};

/** The violations of `spec` (empty when it may be submitted). */
export function checkJobSpec(spec: JobSpec | undefined, context: JobSpecContext): FieldViolation[] {
  if (!spec) return [{ field: "spec", description: "is required: the job to run" }];
  const v: FieldViolation[] = [];
  const field = (name: string, description: string) => v.push({ field: `spec.${name}`, description });

  if (spec.name.length > limits.nameChars || /[\r\n]/.test(spec.name)) field("name", `one line of at most ${limits.nameChars} characters`);
  if (!spec.script.trim()) field("script", "is required: the bash script to run");
  if (Buffer.byteLength(spec.script) > limits.scriptBytes) field("script", `at most ${limits.scriptBytes} bytes; put large programs in files the script runs`);
  if (spec.directory) {
    const n = normalize(spec.directory);
    if (isAbsolute(spec.directory) || n === ".." || n.startsWith("../") || spec.directory.includes("\0")) {
      field("directory", "must be a relative path that stays inside the job's work directory");
    }
  }
  for (const key of Object.keys(spec.environment)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) field(`environment["${key}"]`, "variable names are letters, digits and _, not starting with a digit");
    if (["jobid", "jobndx", "base", "mpirun", "nodes"].includes(key) || key.startsWith("LCLSTREAM_RANK") || key === "LCLSTREAM_PROCESS_COUNT") {
      field(`environment["${key}"]`, "is set by the job queue itself");
    }
  }
  if (spec.callback) {
    const refused =
      spec.callback.length > limits.urlChars ? `at most ${limits.urlChars} characters` : refuseCallbackUrl(spec.callback, context.callbackPrefixes);
    if (refused) field("callback", refused);
  }
  for (const [name, value] of Object.entries(spec.cbHeaders)) {
    const refused = refuseCallbackHeader(name, value);
    if (refused) field(`cb_headers["${name}"]`, refused);
  }
  if (spec.cbSecret.length > limits.secretChars) field("cb_secret", `at most ${limits.secretChars} characters`);
  if (spec.maxRestarts > limits.maxRestarts) field("max_restarts", `at most ${limits.maxRestarts}`);

  const r = spec.resources;
  if (r) {
    const bound = (name: string, value: number, max: number) => value > max && field(`resources.${name}`, `at most ${max}`);
    bound("duration_minutes", r.durationMinutes, limits.durationMinutes);
    bound("node_count", r.nodeCount, limits.nodeCount);
    bound("process_count", r.processCount, limits.processCount);
    bound("processes_per_node", r.processesPerNode, limits.processCount);
    bound("cpu_cores_per_process", r.cpuCoresPerProcess, 1024);
    bound("gpu_cores_per_process", r.gpuCoresPerProcess, 64);
    const nodes = r.nodeCount || 1;
    if (r.processesPerNode && r.processCount && r.processesPerNode * nodes < r.processCount) {
      field("resources.processes_per_node", `${r.processesPerNode} per node on ${nodes} node(s) cannot hold ${r.processCount} processes`);
    }
  }

  const name = context.backendName(spec.backend);
  const backend = context.backends.get(name);
  if (!backend)
    field(
      "backend",
      `unknown backend "${spec.backend}"; this job queue has: ${[...context.backends.keys()].join(", ")} (and default, meaning ${context.backendName("")})`,
    );
  else v.push(...backend.check(spec));
  return v;
}
