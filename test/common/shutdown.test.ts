import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { serve } from "../../services/common/server.js";
import { abortable } from "../../services/common/abortable.js";
import { createTestPki } from "../helpers/pki.js";
import { clientFor, startServer } from "../helpers/servers.js";

describe("graceful shutdown", () => {
  it("ends an open server stream with UNAVAILABLE within a second, and the handler sees the abort", async () => {
    const pki = await createTestPki();
    let handlerSawAbort: unknown;
    const server = await startServer(pki, {
      services: [
        serve(JobQueueService, {
          async *watchJob(_req, ctx) {
            yield { transition: { info: "first" } };
            try {
              await abortable(new Promise(() => undefined), ctx.signal);
            } finally {
              handlerSawAbort = ctx.signal.reason;
            }
          },
        }),
      ],
    });
    const client = clientFor(JobQueueService, server, pki.alice);
    const health = clientFor(Health, server, pki.alice);
    // A health watch open before shutdown sees SERVING, then the stream ends.
    const healthStream = health.watch({ service: "" })[Symbol.asyncIterator]();
    expect((await healthStream.next()).value?.status).toBe(Status.SERVING);
    const healthWatch = (async () => {
      const states: Status[] = [];
      try {
        for (let r = await healthStream.next(); !r.done; r = await healthStream.next()) states.push(r.value.status);
      } catch (error) {
        return { states, code: ConnectError.from(error).code };
      }
      return { states, code: undefined };
    })();
    const received: string[] = [];
    let closedAt = 0;
    const watch = (async () => {
      for await (const res of client.watchJob({ name: "jobs/1" })) {
        received.push(res.transition?.info ?? "");
        closedAt = performance.now();
        void server.close();
      }
    })();
    const error = await watch.then(() => undefined, ConnectError.from);
    expect(received).toEqual(["first"]);
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toContain("shutting down");
    expect(performance.now() - closedAt).toBeLessThan(1000);
    expect(ConnectError.from(handlerSawAbort).code).toBe(Code.Unavailable);
    const healthEnd = await healthWatch;
    expect(healthEnd.code).toBe(Code.Unavailable);
    expect(healthEnd.states.every((state) => state === Status.NOT_SERVING)).toBe(true);
    await server.close();
  });
});
