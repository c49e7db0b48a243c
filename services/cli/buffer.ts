/** `lclstream buffer …`: run the buffer, and look at its streams. */
import type { Command } from "commander";
import { createClient } from "@connectrpc/connect";
import { BufferService, DeliveryMode, StreamSchema, Stream_State } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { createMeshTransportFromCertDir } from "../common/client.js";
import type { BufferConfig } from "../buffer/server.js";
import { addServeOptions, asJson, serveConfig, serveUntilSignal, meshEndpoint, meshOptions } from "./options.js";

async function bufferClient(o: { url?: string; certDir?: string; stateDir?: string }) {
  const { url, certDir } = meshEndpoint("buffer", o);
  return createClient(BufferService, await createMeshTransportFromCertDir(url, certDir));
}

const streamName = (id: string) => (id.startsWith("streams/") ? id : `streams/${id}`);
const MB = (bytes: bigint | number) => `${(Number(bytes) / 1e6).toFixed(1)} MB`;

export function registerBufferCommands(program: Command): void {
  const buffer = program.command("buffer").description("the buffer between producers and consumers: run it, look at its streams");

  addServeOptions(buffer.command("serve").description("run the buffer"), "buffer").action(async (o) => {
    const { build, growHeapInLargeSteps } = await import("../buffer/server.js"); // the server's code, only to serve
    growHeapInLargeSteps();
    const server = await build((await serveConfig(o)) as BufferConfig);
    await serveUntilSignal("buffer", server);
  });

  buffer
    .command("streams")
    .description("list the streams you own or may read")
    .option("--json", "one JSON object per stream, a line each")
    .action(async (o) => {
      const client = await bufferClient(o);
      if (!o.json) console.log(["NAME", "STATE", "OWNER", "BATCHES", "BUFFERED", "CAPACITY", "GROUPS"].join("\t"));
      let pageToken = "";
      do {
        const page = await client.listStreams({ pageToken, pageSize: 500 });
        for (const s of page.streams) {
          if (o.json) {
            console.log(asJson(StreamSchema, s));
            continue;
          }
          const m = s.metrics!;
          console.log(
            [
              s.name,
              Stream_State[s.state].toLowerCase(),
              s.owner,
              m.publishedBatches,
              MB(m.bufferedBytes),
              MB(s.capacityBytes),
              s.consumerGroups.map((g) => g.name).join(","),
            ].join("\t"),
          );
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
    });

  buffer
    .command("stat")
    .description("a stream's live metrics: producers, groups, lag, rates")
    .argument("<stream>", "the stream, ID or streams/ID")
    .option("--json", "the whole Stream as JSON")
    .action(async (id: string, o) => {
      const { stream: s } = await (await bufferClient(o)).getStream({ name: streamName(id) });
      if (o.json) {
        console.log(asJson(StreamSchema, s!, true));
        return;
      }
      const m = s!.metrics!;
      console.log(
        `${s!.name}  ${Stream_State[s!.state].toLowerCase()}${s!.stateReason ? ` (${s!.stateReason})` : ""}  owner ${s!.owner}${s!.durable ? "  durable" : ""}`,
      );
      console.log(
        `published ${m.publishedBatches} batches, ${m.publishedEvents} events, ${MB(m.publishedBytes)}; ${(m.publishBytesPerSecond / 1e6).toFixed(1)} MB/s`,
      );
      console.log(`buffered  ${m.bufferedBatches} batches, ${MB(m.bufferedBytes)} of ${MB(s!.capacityBytes)}`);
      for (const p of m.producers)
        console.log(`rank ${p.producerRank}: next seq ${p.nextSeq}, ${p.events} events${p.done ? ", done" : ""}${p.connected ? ", connected" : ""}`);
      for (const g of m.groups) {
        console.log(
          `group ${g.group}: ${g.consumers} consumer(s), delivered ${g.deliveredBatches} (${MB(g.deliveredBytes)}), acked ${g.ackedBatches}, lag ${g.lagBatches}, redelivered ${g.redeliveredBatches}, ${(g.deliverBytesPerSecond / 1e6).toFixed(1)} MB/s${g.endOfStreamDelivered ? ", end of stream delivered" : ""}`,
        );
      }
    });

  buffer
    .command("tail")
    .description("consume a stream as one consumer of a group, printing a line per batch and the end-of-stream totals")
    .argument("<stream>", "the stream, ID or streams/ID")
    .option("--group <name>", "the consumer group (default: the stream's first)")
    // No bigint default: commander prints defaults with JSON.stringify, which refuses bigints.
    .option("--start-seq <seq>", "replay from this seq, if retained (default: from the start)", (v) => BigInt(v))
    .action(async (id: string, o) => {
      const client = await bufferClient(o);
      const name = streamName(id);
      const { stream } = await client.getStream({ name });
      const group = stream!.consumerGroups.find((g) => g.name === (o.group ?? stream!.consumerGroups[0]!.name));
      if (!group) throw new Error(`${name} has no group "${o.group}"; its groups: ${stream!.consumerGroups.map((g) => g.name).join(", ")}`);
      const acks = group.mode !== DeliveryMode.LATEST_ONLY;
      let consumerId = "";
      for await (const r of client.subscribe({ stream: name, consumerGroup: group.name, startSeq: o.startSeq })) {
        if (r.kind.case === "started") consumerId = r.kind.value.consumerId;
        else if (r.kind.case === "batch") {
          const b = r.kind.value;
          const fields =
            b.payload.case === "columns"
              ? Object.keys(b.payload.value.fields).join(",")
              : b.payload.case === "serialized"
                ? `${b.payload.value.data.byteLength}-byte file`
                : "";
          console.log(`seq ${r.seq}\trank ${b.producerRank}\tbatch ${b.seq}\t${b.eventIndices.length} events\t${fields}${r.redelivery ? "\tredelivered" : ""}`);
          if (acks) await client.ack({ stream: name, consumerGroup: group.name, consumerId, seqs: [r.seq] });
        } else if (r.kind.case === "endOfStream") {
          const t = r.kind.value;
          console.log(`end of stream: ${t.batchCount} batches, ${t.eventCount} events, ${MB(t.payloadBytes)}`);
        }
      }
    });
  // Every client command finds the buffer as the others find theirs.
  for (const c of buffer.commands) if (c.name() !== "serve") meshOptions(c, "buffer", "the buffer");
}
