/**
 * ProducerService: the catalog of sources this producer offers, Produce (the
 * pipeline streamed straight to the caller) and the status of the pipelines
 * running in it.
 */
import { randomBytes } from "node:crypto";
import { isAbsolute, relative, resolve } from "node:path";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { invalidArgument, rpcError } from "../common/errors.js";
import { pageOf, readPage } from "../common/paging.js";
import { callerOf } from "../common/peer.js";
import type { Policy } from "../common/policy.js";
import { ConfigError, parseProducerConfig, readProducerConfig, type CheckedConfig, type ProducerConfig } from "./config.js";
import { dtypeToProto } from "./ndarray.js";
import { checkPipeline, openSource, pipelineFields, runPipeline } from "./pipeline.js";
import { parseSourceIdentifier, psanaRunsUnder } from "./sources/psana.js";

export const producerDomain = "lclstream.producer";

/** A named source of the catalog: a producer config users start from. */
export interface CatalogEntry {
  name: string;
  description: string;
  config: unknown;
}

export interface ProducerServiceDeps {
  catalog: CatalogEntry[];
  /** Who may stream (admins and submitters: the data request service); everyone else asks through a data request. */
  policy: Policy;
  /** Directories HDF5 sources may read from; empty allows none. */
  dataRoots: string[];
  now?: () => number;
}

interface Running {
  id: string;
  owner: string;
  sourceType: string;
  rank: number;
  ranks: number;
  events: number;
  batches: number;
  bytes: number;
  /** Events left out as incomplete (skip_incomplete_events). */
  skipped: number;
  start: number;
}

/** Rethrows a ConfigError as INVALID_ARGUMENT (INVALID_CONFIG) with a violation per path under `field`; anything else as it is. */
function refuseConfig(field: string) {
  return (error: unknown): never => {
    if (error instanceof ConfigError)
      throw invalidArgument(
        producerDomain,
        error.problems.map((p) => ({ field: `${field}.${p.path}`, description: p.message })),
        "INVALID_CONFIG",
      );
    throw error;
  };
}

/** The files a config's source reads, with the field that names each. */
function filesRead(config: ProducerConfig, field: string): { file: string; path: string }[] {
  const source = config.event_source;
  if (source.type === "HDF5EventSource") return source.files.map((file, i) => ({ file, path: `${field}.event_source.files.${i}` }));
  if (source.type === "Psana2EventSource") {
    try {
      return parseSourceIdentifier(config.source_identifier).files.map((file) => ({ file, path: `${field}.source_identifier` }));
    } catch (error) {
      return refuseConfig(field)(error);
    }
  }
  return [];
}

/**
 * Validates a config, turning its problems into field violations, with what
 * was noticed on the way. `adjust` changes the validated config before the
 * pipeline is checked (a data request's overrides). HDF5 files must lie in
 * `dataRoots`, when given.
 */
export function checkConfig(value: unknown, dataRoots: string[] | undefined, field = "config", adjust?: (config: ProducerConfig) => string[]): CheckedConfig {
  let checked: CheckedConfig;
  try {
    checked = readProducerConfig(value);
    if (adjust) checked.notes.push(...adjust(checked.config));
    checked.notes.push(...checkPipeline(checked.config));
  } catch (error) {
    return refuseConfig(field)(error);
  }
  // Without data directories (a check on the command line) the files are not checked against them.
  if (dataRoots) {
    const roots = dataRoots.map((r) => resolve(r));
    for (const { file, path } of filesRead(checked.config, field)) {
      const inside = roots.some((root) => {
        const rel = relative(root, resolve(file));
        return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
      });
      if (!inside) {
        throw rpcError(
          Code.PermissionDenied,
          producerDomain,
          "PATH_NOT_ALLOWED",
          `${file} is outside the data directories this producer may read (${roots.join(", ") || "none configured"})`,
          { metadata: { field: path } },
        );
      }
    }
  }
  return checked;
}

export function createProducerService(deps: ProducerServiceDeps): ServiceImpl<typeof ProducerService> {
  const now = deps.now ?? Date.now;
  const running = new Map<string, Running>();

  return {
    async listSources(req, ctx) {
      const page = readPage(req, producerDomain);
      const caller = callerOf(ctx);
      const sources = await Promise.all(
        deps.catalog.map(async (entry) => {
          const config = parseProducerConfig(entry.config, `catalog entry ${entry.name}`);
          const source = await openSource(config);
          try {
            return {
              name: entry.name,
              type: config.event_source.type,
              description: entry.description,
              runs: [{ name: config.source_identifier, eventCount: BigInt(source.eventCount) }],
              fields: pipelineFields(config, source).map((f) => ({
                name: f.name,
                dtype: dtypeToProto[f.dtype],
                shape: f.shape.map(BigInt),
                description: f.description,
                unit: f.unit ?? "",
              })),
            };
          } finally {
            source.close();
          }
        }),
      );
      // The XTC2 runs under the data directories, as psana describes them (each detector's fields are known only once read).
      // A run is listed to those who may ask for its experiment (and to admins and submitters): its name is the experiment's.
      const visible = (await psanaRunsUnder(deps.dataRoots)).filter((r) => deps.policy.maySubmitJobs(caller) || deps.policy.mayRequest(caller, r.experiment));
      const runs = visible.map((r) => ({
        name: `psana2/${r.experiment}/r${String(r.run).padStart(4, "0")}`,
        type: "Psana2EventSource",
        description: `run ${r.run} of ${r.experiment}: ${r.files.length} XTC2 file${r.files.length > 1 ? "s" : ""} in ${r.dir}`,
        runs: [{ name: `exp=${r.experiment},run=${r.run},dir=${r.dir}`, eventCount: 0n }],
        fields: r.detectors.map((d) => ({ name: d.name, description: `${d.type} ${d.algorithm} ${d.version}` })),
      }));
      const all = [...sources, ...runs];
      const { items, nextPageToken } = pageOf(all.slice(page.offset, page.offset + page.size + 1), page);
      return { sources: items, nextPageToken };
    },

    async *produce(req, ctx: HandlerContext) {
      const caller = callerOf(ctx);
      // Produce reads facility data straight to the caller, past the experiments policy of the request service.
      if (!deps.policy.maySubmitJobs(caller)) {
        throw rpcError(
          Code.PermissionDenied,
          producerDomain,
          "PRODUCE_NOT_ALLOWED",
          `${caller.uri} may not stream from the producer directly; ask for data with a data request (lclstream get), which checks your experiments`,
        );
      }
      const { config } = checkConfig(req.config, deps.dataRoots);
      if (config.data_handlers.length) {
        throw invalidArgument(producerDomain, [
          { field: "config.data_handlers", description: "Produce streams the batches to you; data_handlers are for producer jobs (lclstream produce)" },
        ]);
      }
      const ranks = req.rankCount || 1;
      if (req.rank >= ranks) throw invalidArgument(producerDomain, [{ field: "rank", description: `must be below rank_count ${ranks}` }]);
      const source = await openSource(config, { rank: req.rank, ranks, start: Number(req.startEvent) }).catch(refuseConfig("config"));
      try {
        pipelineFields(config, source); // an HDF5 source's fields are known only now
      } catch (error) {
        source.close();
        refuseConfig("config")(error);
      }
      const run: Running = {
        id: randomBytes(6).toString("hex"),
        owner: caller.uri,
        sourceType: config.event_source.type,
        rank: req.rank,
        ranks,
        events: 0,
        batches: 0,
        bytes: 0,
        skipped: 0,
        start: now(),
      };
      running.set(run.id, run);
      try {
        const batches = runPipeline(config, source, {
          rank: req.rank,
          ranks,
          startEvent: Number(req.startEvent),
          maxEvents: Number(req.maxEvents),
          signal: ctx.signal,
        });
        let next = await batches.next();
        for (; !next.done; next = await batches.next()) {
          const b = next.value;
          run.events += b.events;
          run.batches++;
          run.bytes += b.bytes.byteLength;
          run.skipped = b.skipped;
          yield { kind: { case: "batch", value: b.batch } };
        }
        run.skipped = next.value.skipped;
        yield {
          kind: {
            case: "endOfStream",
            value: {
              batchCount: BigInt(run.batches),
              eventCount: BigInt(run.events),
              payloadBytes: BigInt(run.bytes),
              producerTotals: [
                { producerRank: req.rank, batchCount: BigInt(run.batches), eventCount: BigInt(run.events), skippedEventCount: BigInt(run.skipped) },
              ],
            },
          },
        };
      } finally {
        running.delete(run.id);
        source.close();
      }
    },

    getStatus(_req, ctx) {
      const caller = callerOf(ctx);
      // Others' pipelines name their owners: only admins see every one.
      const visible = [...running.values()].filter((r) => r.owner === caller.uri || deps.policy.isAdmin(caller));
      return {
        pipelines: visible.map((r) => ({
          id: r.id,
          owner: r.owner,
          sourceType: r.sourceType,
          rank: r.rank,
          rankCount: r.ranks,
          events: BigInt(r.events),
          batches: BigInt(r.batches),
          bytes: BigInt(r.bytes),
          skippedEvents: BigInt(r.skipped),
          eventsPerSecond: r.events / Math.max(0.001, (now() - r.start) / 1000),
          startTime: timestampFromMs(r.start),
        })),
      };
    },
  };
}
