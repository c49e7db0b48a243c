/**
 * Bounds on what a request may carry, checked before any handler runs:
 * every enum field holds a value its enum defines (proto3 enums are open on
 * the wire, so `serializer: 99` would otherwise be stored and echoed back),
 * and every string is at most a bounded length (a 1 MiB experiment name
 * would otherwise land in the database and in every listing). Requests of
 * client streams (Publish) are not walked: the data path checks its own.
 */
import { toJson, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { StructSchema, type Struct } from "@bufbuild/protobuf/wkt";
import type { Interceptor } from "@connectrpc/connect";
import { invalidArgument, runtimeDomain, type FieldViolation } from "./errors.js";

/** Characters any string field may hold unless {@link maxStringChars} says otherwise. */
export const defaultMaxStringChars = 4096;

/**
 * Fields whose bound differs from the default, by full name. The proto
 * comments of these fields say the same.
 */
export const maxStringChars: Record<string, number> = {
  "lclstream.request.v1.DataRequest.experiment": 128,
  "lclstream.request.v1.DataRequest.backend": 64,
  "lclstream.request.v1.CreateDataRequestRequest.request_id": 128,
  "lclstream.buffer.v1.ConsumerGroup.name": 64,
  "lclstream.jobs.v1.JobSpec.name": 256,
  "lclstream.jobs.v1.JobSpec.backend": 64,
  // A job's script is a program; a CSR a PEM block; certificates a chain.
  "lclstream.jobs.v1.JobSpec.script": 1024 * 1024,
  // Above the CA's own CSR checks, which say more precisely what is wrong.
  "lclstream.ca.v1.EnrollRequest.csr_pem": 64 * 1024,
  "lclstream.ca.v1.RenewRequest.csr_pem": 64 * 1024,
};

/** At most this many violations are listed (a message of a million bad strings stays short). */
const maxViolations = 10;

/** The violations of `message`: undefined enum values and overlong strings, with their paths. */
export function boundsViolations(desc: DescMessage, message: Message): FieldViolation[] {
  const out: FieldViolation[] = [];
  walk(desc, message as unknown as Record<string, unknown>, "", out);
  return out.slice(0, maxViolations);
}

function walk(desc: DescMessage, message: Record<string, unknown>, path: string, out: FieldViolation[]): void {
  if (out.length >= maxViolations) return;
  if (desc.typeName === "google.protobuf.Struct") {
    walkStruct(message, path, out);
    return;
  }
  for (const field of desc.fields) {
    const at = path ? `${path}.${field.name}` : field.name;
    const value = field.oneof ? oneofValue(message, field) : message[field.localName];
    if (value === undefined) continue;
    switch (field.fieldKind) {
      case "scalar":
      case "enum":
        checkValue(field, value, at, out);
        break;
      case "message":
        walk(field.message, value as Record<string, unknown>, at, out);
        break;
      case "list":
        for (const [i, item] of (value as unknown[]).entries()) {
          if (field.listKind === "message") walk(field.message, item as Record<string, unknown>, `${at}[${i}]`, out);
          else checkValue(field, item, `${at}[${i}]`, out);
        }
        break;
      case "map":
        for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
          checkString(field, key, `${at} key`, out);
          if (field.mapKind === "message") walk(field.message, item as Record<string, unknown>, `${at}["${clipKey(key)}"]`, out);
          else checkValue(field, item, `${at}["${clipKey(key)}"]`, out);
        }
        break;
    }
  }
}

function oneofValue(message: Record<string, unknown>, field: DescField): unknown {
  const oneof = message[field.oneof!.localName] as { case?: string; value?: unknown } | undefined;
  return oneof?.case === field.localName ? oneof.value : undefined;
}

function checkValue(field: DescField, value: unknown, at: string, out: FieldViolation[]): void {
  const enumDesc =
    field.fieldKind === "enum"
      ? field.enum
      : field.fieldKind === "list" && field.listKind === "enum"
        ? field.enum
        : field.fieldKind === "map" && field.mapKind === "enum"
          ? field.enum
          : undefined;
  if (enumDesc && !enumDesc.values.some((v) => v.number === value)) {
    out.push({
      field: at,
      description: `${String(value)} is not a value of ${enumDesc.typeName}; use one of ${enumDesc.values.map((v) => v.name).join(", ")}`,
    });
  }
  if (typeof value === "string") checkString(field, value, at, out);
}

function checkString(field: DescField, value: string, at: string, out: FieldViolation[]): void {
  const max = maxStringChars[`${field.parent.typeName}.${field.name}`] ?? defaultMaxStringChars;
  if (value.length > max) out.push({ field: at, description: `is ${value.length} characters; at most ${max} are accepted` });
}

/**
 * A Struct (a producer config) walked as the JSON it is, with JSON-style
 * paths. Generated code holds a Struct field as a plain JSON object; a Struct
 * message (built by hand) is read as JSON first.
 */
function walkStruct(message: Record<string, unknown>, path: string, out: FieldViolation[]): void {
  const visit = (value: unknown, at: string): void => {
    if (out.length >= maxViolations) return;
    if (typeof value === "string") {
      if (value.length > defaultMaxStringChars)
        out.push({ field: at, description: `is ${value.length} characters; at most ${defaultMaxStringChars} are accepted` });
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => visit(v, `${at}[${i}]`));
    } else if (value && typeof value === "object") {
      for (const [key, v] of Object.entries(value)) {
        if (key.length > defaultMaxStringChars)
          out.push({ field: `${at} key`, description: `a key of ${key.length} characters; at most ${defaultMaxStringChars}` });
        visit(v, `${at}.${clipKey(key)}`);
      }
    }
  };
  visit("$typeName" in message ? toJson(StructSchema, message as unknown as Struct) : message, path);
}

function clipKey(key: string): string {
  return key.length > 64 ? `${key.slice(0, 64)}…` : key;
}

function check(desc: DescMessage, message: Message): void {
  const violations = boundsViolations(desc, message);
  if (violations.length) throw invalidArgument(runtimeDomain, violations);
}

async function* checked(desc: DescMessage, messages: AsyncIterable<Message>): AsyncIterable<Message> {
  for await (const message of messages) {
    check(desc, message);
    yield message;
  }
}

/** Refuses a unary or server-streaming request out of bounds with INVALID_ARGUMENT and the fields. */
export const requestBoundsInterceptor: Interceptor = (next) => async (req) => {
  if (!req.stream) check(req.method.input, req.message);
  else if (req.method.methodKind === "server_streaming") return next({ ...req, message: checked(req.method.input, req.message) });
  return next(req);
};
