/**
 * Reads a JobSpec document (the JSON or YAML of a `lclstream jobs submit`
 * file) exactly as psik reads it (psik/models.py: JobSpec, ResourceSpec),
 * with psik's names, defaults and quirks, and this project's proto spellings
 * (`duration_minutes`, `max_restarts`, camelCase) accepted beside them.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { z } from "zod";
import type { JobSpecSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";

/** psik's defaults for what a document leaves out (its ResourceSpec and JobSpec field defaults). */
export const psikDefaults = { durationMinutes: 10, cpuCoresPerProcess: 1, exclusiveNodeUse: true, inheritEnvironment: true, backend: "default" };

/** pydantic's lax int: a number, or a string of digits ("60", as psik's README writes it). */
const laxInt = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^\s*\d+\s*$/, "a whole number")
    .transform(Number),
]);
const laxBool = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]);
const strings = z.record(z.string(), z.string({ error: "values are strings (quote numbers)" }));
/** psik's Optional[...] fields take null for "not set". */
const optional = <T extends z.ZodType>(t: T) => t.nullish();

const resourceSchema = z.object({
  duration: optional(laxInt),
  node_count: optional(laxInt),
  process_count: optional(laxInt),
  processes_per_node: optional(laxInt),
  cpu_cores_per_process: optional(laxInt),
  gpu_cores_per_process: optional(laxInt),
  exclusive_node_use: optional(laxBool),
});

const specSchema = z.strictObject({
  name: optional(z.string()),
  directory: optional(z.string()),
  script: z.string({ error: "is required: the script to run" }),
  environment: optional(strings),
  inherit_environment: optional(laxBool),
  resources: optional(z.record(z.string(), z.unknown())),
  backend: optional(z.string({ error: "is a backend's name, such as local or slurm" })),
  attributes: optional(strings),
  callback: optional(z.string()),
  cb_headers: optional(strings),
  cb_secret: optional(z.string()),
  max_restarts: optional(laxInt),
});

/** This project's proto spellings, read as psik's names. */
const aliases: Record<string, string> = { duration_minutes: "duration" };

/** snake_case for camelCase keys (the proto JSON names), then psik's name for a proto one. */
function psikKey(key: string): string {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return aliases[snake] ?? snake;
}

function renameKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [psikKey(k), v]));
}

/** A document read as a JobSpec, and what the reader should know about it. */
export interface ReadJobSpec {
  spec: MessageInitShape<typeof JobSpecSchema>;
  /** Keys psik ignores and so does this reader (unknown `resources` keys). */
  notes: string[];
}

/** Reads a parsed JSON or YAML document as a JobSpec; throws an Error naming every wrong field. */
export function readJobSpecDocument(document: unknown): ReadJobSpec {
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new Error("a JobSpec is a mapping of fields (name, script, resources, ...)");
  }
  const top = renameKeys(document as Record<string, unknown>);
  const parsed = specSchema.safeParse(top);
  if (!parsed.success) throw new Error(describe(parsed.error));
  const s = parsed.data;
  const notes: string[] = [];
  const rawResources = renameKeys(s.resources ?? {});
  const known = new Set(Object.keys(resourceSchema.shape));
  for (const key of Object.keys(rawResources)) {
    // psik's ResourceSpec ignores keys it does not know; so does this reader, but it says so.
    if (!known.has(key)) notes.push(`resources.${key} is not a psik resource; it was ignored`);
  }
  const r = resourceSchema.safeParse(rawResources);
  if (!r.success) throw new Error(describe(r.error, "resources."));
  const res = r.data;
  return {
    notes,
    spec: {
      name: s.name ?? "",
      directory: s.directory ?? "",
      script: s.script,
      environment: s.environment ?? {},
      inheritEnvironment: s.inherit_environment ?? psikDefaults.inheritEnvironment,
      resources: {
        durationMinutes: res.duration ?? psikDefaults.durationMinutes,
        nodeCount: res.node_count ?? 0,
        processCount: res.process_count ?? 0,
        processesPerNode: res.processes_per_node ?? 0,
        cpuCoresPerProcess: res.cpu_cores_per_process ?? psikDefaults.cpuCoresPerProcess,
        gpuCoresPerProcess: res.gpu_cores_per_process ?? 0,
        exclusiveNodeUse: res.exclusive_node_use ?? psikDefaults.exclusiveNodeUse,
      },
      backend: s.backend ?? psikDefaults.backend,
      attributes: s.attributes ?? {},
      callback: s.callback ?? "",
      cbHeaders: s.cb_headers ?? {},
      cbSecret: s.cb_secret ?? "",
      maxRestarts: s.max_restarts ?? 0,
    },
  };
}

function describe(error: z.ZodError, prefix = ""): string {
  return error.issues
    .map((issue) => {
      const path = prefix + issue.path.join(".");
      if (issue.code === "unrecognized_keys") return `${issue.keys.map((k) => `"${prefix}${k}"`).join(", ")}: not a psik JobSpec field`;
      return `${path || "spec"}: ${issue.message}`;
    })
    .join("; ");
}
