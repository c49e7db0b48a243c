/**
 * fast-check arbitraries for any Protobuf message, read off its descriptor:
 * every field, oneof, list and map filled with random values and with the
 * hostile values a service must refuse cleanly (path escapes, NUL bytes,
 * huge strings, out-of-range numbers and enum values nobody defined).
 */
import fc from "fast-check";
import { create, ScalarType, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

/** Strings a service is likely to mishandle, mixed into the random ones. */
const hostileStrings = [
  "",
  " ",
  "../../escape-canary",
  "/etc/passwd",
  "jobs/../../escape-canary",
  "streams/",
  "dataRequests/1",
  "a\0b",
  "spiffe://other.example/user/mallory",
  "user/../service/request",
  "x".repeat(70_000),
  "%s%n$(touch escape-canary)`id`",
  "\u202e\ud800",
];

const int32 = fc.oneof(fc.integer(), fc.constantFrom(0, -1, 2 ** 31 - 1, -(2 ** 31)));
const uint32 = fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 32 - 1));
const int64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, -1n, 2n ** 63n - 1n));
const uint64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 2n ** 64n - 1n));
const double = fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e308));
const text = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 40 }) }, { weight: 1, arbitrary: fc.constantFrom(...hostileStrings) });

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return double;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return int64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return uint64;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32;
    default:
      return int32;
  }
}

/** Any JSON value (google.protobuf.Struct and Value fields are JSON in protobuf-es). */
const json = fc.jsonValue({ maxDepth: 3 });
const jsonObject = fc.dictionary(text, json, { maxKeys: 5 });

/** An arbitrary message of `desc`; nesting stops at `depth` (absent fields past it). */
export function arbitraryMessage<Desc extends DescMessage>(desc: Desc, depth = 3): fc.Arbitrary<MessageShape<Desc>> {
  return fc.record(messageInit(desc, depth), { requiredKeys: [] }).map((init) => create(desc, init as never));
}

function messageInit(desc: DescMessage, depth: number): Record<string, fc.Arbitrary<unknown>> {
  const init: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const cases = member.fields.flatMap((f) => {
        const value = single(f, depth);
        return value ? [value.map((v) => ({ case: f.localName, value: v }))] : [];
      });
      if (cases.length) init[member.localName] = fc.oneof(...cases);
      continue;
    }
    const value = fieldValue(member, depth);
    if (value) init[member.localName] = value;
  }
  return init;
}

/** The value of a field that is neither a list nor a map (also a oneof member). */
function single(field: DescField, depth: number): fc.Arbitrary<unknown> | undefined {
  if (field.fieldKind === "scalar") return scalar(field.scalar);
  if (field.fieldKind === "enum") return enumValue(field.enum.values.map((v) => v.number));
  if (field.fieldKind === "message") return messageValue(field.message, depth);
  return undefined;
}

function fieldValue(field: DescField, depth: number): fc.Arbitrary<unknown> | undefined {
  switch (field.fieldKind) {
    case "list": {
      const element =
        field.listKind === "scalar"
          ? scalar(field.scalar)
          : field.listKind === "enum"
            ? enumValue(field.enum.values.map((v) => v.number))
            : messageValue(field.message, depth);
      return element && fc.array(element, { maxLength: 4 });
    }
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalar(field.scalar)
          : field.mapKind === "enum"
            ? enumValue(field.enum.values.map((v) => v.number))
            : messageValue(field.message, depth);
      const key =
        field.mapKey === ScalarType.STRING
          ? text
          : field.mapKey === ScalarType.BOOL
            ? fc.constantFrom("true", "false")
            : fc.integer({ min: -5, max: 5 }).map(String);
      return value && fc.dictionary(key, value, { maxKeys: 3 });
    }
    default:
      return single(field, depth);
  }
}

/** Defined values, and a few nobody defined (proto3 enums are open). */
function enumValue(numbers: number[]): fc.Arbitrary<number> {
  return fc.oneof(fc.constantFrom(...numbers), fc.integer({ min: -3, max: Math.max(...numbers) + 3 }));
}

function messageValue(desc: DescMessage, depth: number): fc.Arbitrary<unknown> | undefined {
  if (desc.typeName === "google.protobuf.Struct") return jsonObject;
  if (desc.typeName === "google.protobuf.Value") return json;
  if (desc.typeName === "google.protobuf.ListValue") return fc.array(json, { maxLength: 4 });
  if (isWrapperDesc(desc)) return scalar(desc.fields[0]!.scalar!);
  if (depth <= 0) return undefined;
  return arbitraryMessage(desc, depth - 1);
}
