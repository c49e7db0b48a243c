/**
 * DataRequestService: the user-facing API. Authorizes the caller against the
 * policy, validates the producer config before anything starts, records the
 * request, and hands it to the orchestrator; reads come with live metrics
 * from the buffer and the job queue.
 */
import { setMaxListeners } from "node:events";
import { isAbsolute, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { Code, type Client, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConsumerGroupSchema, GroupMetricsSchema, ShardAssignment, type StreamMetrics, StreamMetricsSchema } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import type { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import {
  DataRequestMetricsSchema,
  DataRequestSchema,
  type DataRequestService,
  DataRequest_State as State,
  Serializer,
  type DataRequest,
  type StreamShard,
} from "../../gen/lclstream/request/v1/request_pb.js";
import { Job_State } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { defaultConsumerGroup } from "../common/data-path.js";
import { invalidArgument, rpcError, type FieldViolation } from "../common/errors.js";
import { abortable } from "../common/abortable.js";
import { AsyncQueue, idle } from "../common/async-queue.js";
import { resolveIdentity, resolveIdentityField, type Identity } from "../common/identity.js";
import { pageOf, readPage } from "../common/paging.js";
import { callerOf } from "../common/peer.js";
import type { Policy } from "../common/policy.js";
import { checkConfig } from "../producer/producer-service.js";
import type { CheckedConfig, ProducerConfig } from "../producer/config.js";
import { openSource } from "../producer/pipeline.js";
import { type BufferMember, memberOf } from "./buffer-pool.js";
import type { Orchestrator } from "./orchestrator.js";
import { shardsOf } from "../common/shards.js";
import { finalStates, type RequestStore } from "./request-store.js";
import { type Assignment, ShardAssigner } from "./shard-assignment.js";

export const requestDomain = "lclstream.request";

export interface RequestServiceDeps {
  store: RequestStore;
  orchestrator: Orchestrator;
  policy: Policy;
  buffers: BufferMember[];
  jobs: Client<typeof JobQueueService>;
  /** Directories HDF5 sources of requests may read. */
  dataRoots: string[];
  defaultBackend: string;
}

/**
 * How many events a config's producers will make, when the config says
 * without reading the data: an internal source's count, or the events in
 * HDF5 files this service can open; 0 otherwise (psana runs, files only the
 * producers' nodes see).
 */
async function expectedEvents(config: ProducerConfig): Promise<number> {
  const source = config.event_source;
  if (source.type === "InternalEventSource") return source.number_of_events_to_generate;
  if (source.type !== "HDF5EventSource") return 0;
  try {
    const files = await openSource(config);
    files.close();
    return files.eventCount;
  } catch {
    return 0; // the producer says what is wrong with the files, where it reads them
  }
}

/**
 * The producer config a request runs: its `producer`, with the request's
 * batch size and serializer, publishing to the buffer in place of its own
 * handlers; and notes on what was changed.
 */
export function producerConfigOf(r: DataRequest, dataRoots: string[] | undefined): CheckedConfig {
  return checkConfig(r.producer ?? {}, dataRoots, "data_request.producer", (config) => {
    const notes: string[] = [];
    // A request names files as the facility keeps them: a relative path lies under its (first) data
    // directory, wherever the producer runs; the files are then checked against every data directory.
    const source = config.event_source;
    if (dataRoots?.length && source.type === "HDF5EventSource" && source.files.some((f) => !isAbsolute(f))) {
      source.files = source.files.map((f) => resolve(dataRoots[0]!, f));
      notes.push(`event_source.files: relative paths are read under the data directory ${resolve(dataRoots[0]!)}`);
    }
    if (r.batchSize) config.processing_pipeline.batch_size = r.batchSize;
    // The request picks the format; the config's own settings of that format (compression: gzip) stay.
    if (r.serializer === Serializer.HDF5 && config.data_serializer.type !== "HDF5BinarySerializer") {
      config.data_serializer = { type: "HDF5BinarySerializer", compression: null, compression_level: 3 };
    }
    if (r.serializer === Serializer.NATIVE) config.data_serializer = { type: "NativeBinarySerializer" };
    config.data_handlers.forEach((h, i) => {
      if (h.type === "BinaryDataStreamingDataHandler")
        notes.push(`data_handlers.${i}: ${h.type} (${h.urls.join(", ")}) replaced by the request's buffer stream`);
      else if (h.type === "BinaryFileWritingDataHandler") {
        notes.push(
          `data_handlers.${i}: ${h.type} left out: a data request writes no files at the facility (\`lclstream get --out DIR\` writes them where you are)`,
        );
      }
    });
    config.data_handlers = [{ type: "BufferStreamingDataHandler" }];
    return notes;
  });
}

/** Several shards' stream metrics as one stream's: counters and rates summed, groups by name. */
export function sumMetrics(shards: StreamMetrics[]): StreamMetrics | undefined {
  if (shards.length <= 1) return shards[0];
  const total = clone(StreamMetricsSchema, shards[0]!);
  total.producers = shards.flatMap((m) => m.producers).sort((a, b) => a.producerRank - b.producerRank);
  for (const m of shards.slice(1)) {
    total.publishedBatches += m.publishedBatches;
    total.publishedEvents += m.publishedEvents;
    total.publishedBytes += m.publishedBytes;
    total.bufferedBatches += m.bufferedBatches;
    total.bufferedBytes += m.bufferedBytes;
    total.publishBytesPerSecond += m.publishBytesPerSecond;
    for (const g of m.groups) {
      const t = total.groups.find((x) => x.group === g.group);
      if (!t) {
        total.groups.push(clone(GroupMetricsSchema, g));
        continue;
      }
      // A consumer of a merged group reads every shard: the most any shard sees is how many there are.
      t.consumers = Math.max(t.consumers, g.consumers);
      t.deliveredBatches += g.deliveredBatches;
      t.deliveredBytes += g.deliveredBytes;
      t.ackedBatches += g.ackedBatches;
      t.redeliveredBatches += g.redeliveredBatches;
      t.lagBatches += g.lagBatches;
      t.deliverBytesPerSecond += g.deliverBytesPerSecond;
      t.endOfStreamDelivered &&= g.endOfStreamDelivered;
    }
  }
  return total;
}

export function createRequestService(deps: RequestServiceDeps): ServiceImpl<typeof DataRequestService> {
  const { store, policy } = deps;

  /** The request `name`, for its owner, an admin, or (with `asReader`) an identity it names as a reader. */
  function own(name: string, ctx: HandlerContext, asReader = false): DataRequest {
    const caller = callerOf(ctx);
    const id = /^dataRequests\/([a-z0-9]{1,64})$/.exec(name)?.[1];
    if (!id) throw invalidArgument(requestDomain, [{ field: "name", description: `"${name}" is not a data request name; they look like dataRequests/ID` }]);
    const r = store.get(id);
    if (!r || (r.owner !== caller.uri && !policy.isAdmin(caller) && !(asReader && r.readers.includes(caller.uri)))) {
      throw rpcError(Code.NotFound, requestDomain, "REQUEST_NOT_FOUND", `no data request ${name} of yours; see \`lclstream requests list\``, {
        metadata: { name },
      });
    }
    return r;
  }

  const assigner = new ShardAssigner();
  const bufferFor = (shard: StreamShard) => memberOf(deps.buffers, shard);

  /** The request with live metrics from its shards' streams (summed) and its jobs. */
  async function withMetrics(r: DataRequest, signal?: AbortSignal): Promise<DataRequest> {
    const out = clone(DataRequestSchema, r);
    const shards = shardsOf(r).filter((s) => s.stream);
    if (!shards.length) return out;
    // One call per shard listens on the caller's signal at once.
    if (signal) setMaxListeners(16 + shards.length, signal);
    const streams = await Promise.all(
      shards.map((shard) =>
        bufferFor(shard)
          ?.client.getStream({ name: shard.stream }, { signal })
          .then((s) => s.stream?.metrics)
          .catch(() => undefined),
      ),
    );
    const m = sumMetrics(streams.filter((x): x is StreamMetrics => x !== undefined));
    const jobs = await Promise.all(r.jobs.map((name) => deps.jobs.getJob({ name }, { signal }).catch(() => undefined)));
    out.metrics = create(DataRequestMetricsSchema, {
      events: m?.publishedEvents ?? 0n,
      batches: m?.publishedBatches ?? 0n,
      bytes: m?.publishedBytes ?? 0n,
      bytesPerSecond: m?.publishBytesPerSecond ?? 0,
      eventsPerSecond: m && m.publishedBytes > 0n ? (m.publishBytesPerSecond * Number(m.publishedEvents)) / Number(m.publishedBytes) : 0,
      groups: m?.groups ?? [],
      jobs: jobs.flatMap((j) =>
        j?.job
          ? [
              {
                job: j.job.name,
                state: Job_State[j.job.state],
                info: j.job.transitions.at(-1)?.info ?? "",
                jobndx: j.job.jobndx,
              },
            ]
          : [],
      ),
    });
    return out;
  }

  return {
    async createDataRequest(req, ctx) {
      const caller = callerOf(ctx);
      const d = req.dataRequest;
      if (!d) throw invalidArgument(requestDomain, [{ field: "data_request", description: "is required" }]);
      if (req.requestId) {
        const earlier = store.findByRequestId(caller.uri, req.requestId);
        if (earlier) return { dataRequest: earlier };
      }
      const v: FieldViolation[] = [];
      const experiment = d.experiment || "default";
      if (!policy.mayRequest(caller, experiment)) {
        throw rpcError(
          Code.PermissionDenied,
          requestDomain,
          "EXPERIMENT_NOT_ALLOWED",
          `${caller.uri} may not request data of experiment "${experiment}"; ask an admin to add you to it in the policy`,
          {
            metadata: { caller: caller.uri, experiment },
          },
        );
      }
      const readers: string[] = [];
      for (const [i, reader] of d.readers.entries()) {
        try {
          readers.push(resolveIdentity(reader, caller.trustDomain).uri);
        } catch (error) {
          v.push({ field: `data_request.readers[${i}]`, description: (error as Error).message });
        }
      }
      if (d.parallelism > 256) v.push({ field: "data_request.parallelism", description: "at most 256 producer ranks" });
      if (d.shardCount > Math.max(1, d.parallelism)) {
        v.push({
          field: "data_request.shard_count",
          description: `${d.shardCount} shards for ${Math.max(1, d.parallelism)} producer ranks would leave shards no rank publishes to; at most the parallelism`,
        });
      }
      if (!d.producer) v.push({ field: "data_request.producer", description: "is required: the producer config (see examples/)" });
      if (v.length) throw invalidArgument(requestDomain, v);
      const id = `${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
      const now = timestampFromMs(Date.now());
      const r = clone(DataRequestSchema, d);
      Object.assign(r, {
        name: `dataRequests/${id}`,
        owner: caller.uri,
        experiment,
        readers,
        parallelism: d.parallelism || 1,
        backend: d.backend || deps.defaultBackend,
        consumerGroups: d.consumerGroups.length ? d.consumerGroups : [create(ConsumerGroupSchema, { name: defaultConsumerGroup })],
        state: State.PENDING,
        stateReason: "",
        shardCount: d.shardCount || 1,
        shards: [],
        stream: "",
        bufferEndpoint: "",
        jobs: [],
        createTime: now,
        updateTime: now,
      });
      // The producer's own validation, before any job starts.
      const { config, notes } = producerConfigOf(r, deps.dataRoots);
      r.configNotes = notes;
      r.expectedEventCount = BigInt(await expectedEvents(config));
      if (req.validateOnly) return { dataRequest: r };
      store.insert(id, r, req.requestId);
      deps.orchestrator.start(r, config);
      return { dataRequest: r };
    },

    async getDataRequest(req, ctx) {
      return { dataRequest: await withMetrics(own(req.name, ctx), ctx.signal) };
    },

    listDataRequests(req, ctx) {
      const caller = callerOf(ctx);
      const page = readPage(req, requestDomain);
      let owner: Identity | undefined = caller;
      if (req.owner) {
        const wanted = resolveIdentityField(req.owner, caller.trustDomain, requestDomain, "owner");
        if (wanted.uri !== caller.uri && !policy.isAdmin(caller)) {
          throw rpcError(Code.PermissionDenied, requestDomain, "ADMIN_REQUIRED", "only admins may list other identities' requests");
        }
        owner = wanted;
      } else if (policy.isAdmin(caller)) {
        owner = undefined;
      }
      const { items, nextPageToken } = pageOf(store.list({ owner: owner?.uri, state: req.state || undefined }, page.offset, page.size + 1), page);
      return { dataRequests: items, nextPageToken };
    },

    async cancelDataRequest(req, ctx) {
      const r = own(req.name, ctx);
      if (finalStates.has(r.state)) {
        throw rpcError(Code.FailedPrecondition, requestDomain, "REQUEST_ALREADY_ENDED", `${req.name} already ended ${State[r.state]}`);
      }
      return { dataRequest: await deps.orchestrator.cancel(req.name.slice("dataRequests/".length), req.reason) };
    },

    async *watchShardAssignment(req, ctx) {
      let r = own(req.name, ctx, true);
      const id = r.name.slice("dataRequests/".length);
      const group = r.consumerGroups.find((g) => g.name === req.consumerGroup);
      if (!group) {
        throw invalidArgument(requestDomain, [
          {
            field: "consumer_group",
            description: `${r.name} has no group "${req.consumerGroup}"; its groups are ${r.consumerGroups.map((g) => g.name).join(", ")}`,
          },
        ]);
      }
      if (group.shardAssignment !== ShardAssignment.ASSIGNED) {
        throw rpcError(
          Code.FailedPrecondition,
          requestDomain,
          "GROUP_NOT_ASSIGNED",
          `group "${group.name}" of ${r.name} reads every shard merged (its shard_assignment is not SHARD_ASSIGNMENT_ASSIGNED): subscribe to every shard instead`,
          { metadata: { name: r.name, group: group.name } },
        );
      }
      // The shards exist once the request's streams do.
      while (!r.shards.length || r.shards.some((s) => !s.stream)) {
        if (finalStates.has(r.state)) break;
        await abortable(new Promise((resolve) => setTimeout(resolve, 100)), ctx.signal);
        r = store.get(id)!;
      }
      const ended = () => {
        const now = store.get(id)!;
        return now.state === State.FAILED || now.state === State.CANCELED
          ? rpcError(Code.FailedPrecondition, requestDomain, "REQUEST_ENDED", `${r.name} ended ${State[now.state]}: ${now.stateReason}`)
          : undefined;
      };
      const failure = ended();
      if (failure) throw failure;
      const key = `${id}/${group.name}`;
      setMaxListeners(16 + r.shards.length, ctx.signal);
      const told = new AsyncQueue<Assignment>();
      const member = assigner.join(key, r.shards.length, (a) => told.push(a));
      // Done when every shard delivered its end of stream to the group; ends with the request.
      const watch = setInterval(async () => {
        const gone = ended();
        if (gone) return told.fail(gone);
        const metrics = await Promise.all(
          r.shards.map((s) =>
            bufferFor(s)
              ?.client.getStream({ name: s.stream }, { signal: ctx.signal })
              .then((x) => x.stream?.metrics?.groups.find((g) => g.group === group.name)?.endOfStreamDelivered)
              .catch(() => false),
          ),
        );
        if (metrics.every(Boolean) && !ctx.signal.aborted) {
          told.push({ ...assigner.current(key, member)!, complete: true });
          told.close();
        }
      }, 500);
      try {
        // At least every 15 s, like the buffer's heartbeats, so proxies keep the stream open.
        for await (const a of told.drain(ctx.signal, 15_000)) {
          const now = a === idle ? assigner.current(key, member)! : a;
          yield { ...now, complete: now.complete ?? false };
        }
      } finally {
        clearInterval(watch);
        assigner.leave(key, member);
      }
    },

    async *watchDataRequest(req, ctx) {
      const first = own(req.name, ctx);
      const id = first.name.slice("dataRequests/".length);
      // At least every 15 s, like the buffer's heartbeats, so proxies keep the stream open.
      const interval = Math.min(15_000, Math.max(100, req.intervalMs || 1000));
      for (;;) {
        const r = store.get(id)!;
        yield { dataRequest: await withMetrics(r, ctx.signal) };
        if (finalStates.has(r.state)) return;
        await abortable(new Promise((resolve) => setTimeout(resolve, interval)), ctx.signal);
      }
    },
  };
}
