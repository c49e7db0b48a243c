/** lclstreamer's BinaryDataStreamingDataHandler: batches as ZeroMQ PUSH messages, connecting (client) or binding (server), read by a PULL socket. */
import { Pull } from "zeromq";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../services/common/logger.js";
import { parseProducerConfig } from "../../services/producer/config.js";
import { createZmqHandler } from "../../services/producer/handlers.js";
import type { ProducedBatch } from "../../services/producer/pipeline.js";
import { produce } from "../../services/producer/run.js";
import { freePort } from "../helpers/ports.js";
import { internalConfig } from "../helpers/producer-config.js";

const logger = createLogger("test", "silent");
const batch = (n: number) => ({ messages: [new Uint8Array([n, n, n])] }) as ProducedBatch;

async function receive(pull: Pull, count: number): Promise<number[]> {
  const got: number[] = [];
  for (let i = 0; i < count; i++) got.push((await pull.receive())[0]![0]!);
  return got;
}

describe("the ZeroMQ handler", () => {
  it("role client connects to a receiver that binds, as lclstreamer's examples and pull scripts do", async () => {
    const pull = new Pull();
    await pull.bind("tcp://127.0.0.1:*");
    const handler = await createZmqHandler(
      { type: "BinaryDataStreamingDataHandler", urls: [pull.lastEndpoint!], role: "client", library: "zmq", socket_type: "push" },
      logger,
    );
    try {
      for (let n = 0; n < 8; n++) await handler.handle(batch(n));
      await handler.finish({ batches: 8, events: 8 });
      expect(await receive(pull, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      handler.close();
      pull.close();
    }
  });

  it("role server binds, and a receiver that connects later still gets every message", async () => {
    const url = `tcp://127.0.0.1:${await freePort()}`;
    const handler = await createZmqHandler(
      { type: "BinaryDataStreamingDataHandler", urls: [url], role: "server", library: "zmq", socket_type: "push" },
      logger,
    );
    const pull = new Pull();
    try {
      // With no peer yet, a send waits (lclstreamer queues 5, then blocks): nothing is dropped.
      const sending = (async () => {
        for (let n = 0; n < 12; n++) await handler.handle(batch(n));
        await handler.finish({ batches: 12, events: 12 });
      })();
      await new Promise((r) => setTimeout(r, 200));
      pull.connect(url);
      expect(await receive(pull, 12)).toEqual(Array.from({ length: 12 }, (_, n) => n));
      await sending;
    } finally {
      handler.close();
      pull.close();
    }
  });

  it("lets a producer stuck on a receiver that never comes stop when it is aborted (SIGTERM)", async () => {
    // Five messages queue, then a send waits for a receiver forever: only closing the socket ends it.
    const config = parseProducerConfig({
      ...internalConfig(1000, { n: { type: "GenericRandomNumpyArray", array_shape: [256], array_dtype: "float32" } }, { batchSize: 1 }),
      data_handlers: [{ type: "BinaryDataStreamingDataHandler", urls: [`tcp://127.0.0.1:${await freePort()}`], role: "client" }],
    });
    const abort = new AbortController();
    const producing = produce(config, { rank: 0, ranks: 1, logger, signal: abort.signal });
    const outcome = producing.then(
      () => "finished",
      () => "stopped",
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    abort.abort(new Error("terminated"));
    const settled = await Promise.race([outcome, new Promise((resolve) => setTimeout(() => resolve("still waiting"), 3000))]);
    expect(settled).toBe("stopped");
  });
});
