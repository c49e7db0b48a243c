/**
 * Property-based fuzzing of producer configs: the example configs with random
 * values put at random paths, keys dropped and keys added, and arbitrary JSON.
 * A config is either refused with a ConfigError naming each bad path, or it
 * is accepted and the pipeline builds and makes its first batches; nothing
 * else (no TypeError from deep inside a step) may come out.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ConfigError, parseProducerConfig } from "../../services/producer/config.js";
import { checkPipeline, openSource, runPipeline } from "../../services/producer/pipeline.js";

const budgetMs = Number(process.env.LCLSTREAM_FUZZ_MS ?? 500) * 6;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The producer configs of the examples, and lclstreamer's own one that runs
 * here, made small (a 4M-pixel detector per event would make this slow, not
 * stricter).
 */
const seeds: Json[] = [
  ...["crystallography", "time-of-flight", "ml-training"].map(
    (name) => (parseYaml(readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), "utf8")) as { producer: Record<string, any> }).producer,
  ),
  parseYaml(readFileSync(new URL("../fixtures/lclstreamer/lclstreamer-internal.yaml", import.meta.url), "utf8")) as Record<string, any>,
].map((producer) => {
  // The HDF5 example's files become a synthetic detector of the same role.
  for (const [name, source] of Object.entries(producer.data_sources ?? {}) as [string, Record<string, unknown>][]) {
    if (source.type === "SyntheticAreaDetector" || source.type === "HDF5Dataset")
      producer.data_sources[name] = { type: "SyntheticAreaDetector", geometry: "small" };
  }
  if (producer.processing_pipeline.type === "PeaknetPreprocessingPipeline")
    Object.assign(producer.processing_pipeline, { target_height: 300, target_width: 260 });
  producer.event_source = { type: "InternalEventSource", number_of_events_to_generate: 8 };
  // Streaming to a ZeroMQ peer would wait for one: the fuzz runs the pipeline, not the handlers.
  producer.data_handlers = [];
  return producer as Json;
});

/** Every path into a JSON value, as key lists. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") return [prefix];
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((k) => paths((value as Record<string, Json>)[k]!, [...prefix, k]))];
}

/** A copy of `value` with `change` applied at `path`. */
function at(value: Json, path: (string | number)[], change: (parent: Record<string | number, Json>, key: string | number) => void): Json {
  const copy = structuredClone(value);
  if (path.length === 0) return copy;
  let parent = copy as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, Json>;
  change(parent, path[path.length - 1]!);
  return copy;
}

const anyJson = fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>;
const mutated: fc.Arbitrary<Json> = fc
  .record({
    seed: fc.constantFrom(...seeds),
    pick: fc.nat(),
    value: anyJson,
    key: fc.string({ maxLength: 12 }),
    kind: fc.constantFrom("replace", "delete", "add", "number"),
  })
  .map(({ seed, pick, value, key, kind }) => {
    const all = paths(seed);
    const path = all[pick % all.length]!;
    return at(seed, path, (parent, last) => {
      if (kind === "delete") delete parent[last];
      else if (kind === "add" && typeof parent[last] === "object" && parent[last] !== null && !Array.isArray(parent[last]))
        (parent[last] as Record<string, Json>)[key] = value;
      else if (kind === "number") parent[last] = typeof parent[last] === "number" ? (parent[last] as number) * -1000 - 1 : 0;
      else parent[last] = value;
    });
  });

/** Parses, builds and runs the first batches; throws what a user must not see. */
async function tryConfig(value: Json): Promise<"refused" | "ran"> {
  let config;
  try {
    // What every service checks before anything runs.
    config = parseProducerConfig(value);
    checkPipeline(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    expect(error.problems.length).toBeGreaterThan(0);
    for (const p of error.problems) expect(p.path.length * p.message.length).toBeGreaterThan(0);
    return "refused";
  }
  const source = await openSource(config);
  let batches = 0;
  for await (const _ of runPipeline({ ...config, data_handlers: [] }, source, { rank: 0, ranks: 1, maxEvents: 4, signal: AbortSignal.timeout(10_000) }))
    batches++;
  expect(batches).toBeGreaterThan(0);
  return "ran";
}

describe("fuzzing producer configs", () => {
  it("runs every example as it is", async () => {
    for (const seed of seeds) expect(await tryConfig(seed).catch((e: Error) => e.message)).toBe("ran");
  });

  it("refuses each broken config with the paths that are wrong, or runs it: nothing else", async () => {
    const seen = { refused: 0, ran: 0 };
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 4, arbitrary: mutated }, { weight: 1, arbitrary: anyJson }), async (value) => {
        seen[await tryConfig(value)]++;
      }),
      { numRuns: 1_000_000, interruptAfterTimeLimit: budgetMs },
    );
    console.log(`producer configs fuzzed: ${seen.refused} refused, ${seen.ran} ran`);
    expect(seen.refused).toBeGreaterThan(0);
    expect(seen.ran).toBeGreaterThan(0);
  });
});
