/**
 * Slow-loris clients against a real server: connections that never finish
 * the TLS handshake, connections that never call, and calls whose request
 * never finishes. Each is dropped on its own timer while honest clients are
 * served as usual; quiet but legitimate streams are left alone. A peer that
 * stops answering altogether (its process stopped) has its connection closed
 * by the server's keepalive pings, and its calls end.
 */
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { GetJobRequestSchema, JobQueueService, WatchJobRequestSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { abortable } from "../../services/common/abortable.js";
import { encodeFrameParts } from "../../services/common/grpc-frames.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { clientFor, startServer } from "../helpers/servers.js";

const timeoutMs = 400;

/** A peer in a process of its own: opens a WatchJob call for `jobs/until-cancelled` and waits. */
const silentPeer = `
const http2 = require("node:http2");
const o = JSON.parse(process.argv[1]);
const session = http2.connect(o.url, { ca: o.ca, cert: o.cert, key: o.key, servername: "localhost" });
const call = session.request({ ":method": "POST", ":path": o.path, "content-type": "application/grpc+proto", te: "trailers" });
call.end(Buffer.from(o.message, "base64"));
call.resume();
`;

describe("slow clients", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  /** The `jobs/until-cancelled` call on the server: when it started, and when its signal aborted. */
  let untilCancelled: { started: () => void; ended: () => void };

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      handshakeTimeoutMs: timeoutMs,
      idleConnectionTimeoutMs: timeoutMs,
      requestReadTimeoutMs: timeoutMs,
      keepaliveIntervalMs: timeoutMs / 4,
      keepaliveTimeoutMs: timeoutMs,
      services: [
        serve(JobQueueService, {
          getJob: (req) => ({ job: { name: req.name } }),
          // A stream quiet for longer than every timeout, then one message.
          async *watchJob(req, ctx) {
            if (req.name === "jobs/until-cancelled") {
              untilCancelled.started();
              await abortable(new Promise(() => undefined), ctx.signal).catch(() => untilCancelled.ended());
              return;
            }
            await abortable(new Promise((resolve) => setTimeout(resolve, timeoutMs * 3)), ctx.signal);
            yield { transition: { info: "late but fine" } };
          },
        }),
        serve(BufferService, {
          async publish(requests) {
            let accepted = 0n;
            for await (const r of requests) if (r.kind.case === "batch") accepted++;
            return { acceptedBatches: accepted };
          },
        }),
      ],
    });
  });
  afterAll(() => server?.close());

  const honestCall = async () => (await clientFor(JobQueueService, server, pki.alice).getJob({ name: "jobs/ok" })).job?.name;

  /** Resolves with how long the server took to close `socket`. */
  const closedAfter = (socket: { once(event: "close", f: () => void): unknown }) => {
    const start = performance.now();
    return new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - start)));
  };

  /** An HTTP/2 session with alice's certificate, nothing sent yet. */
  const session = () =>
    http2.connect(server.url, { ca: pki.alice.caPem, cert: pki.alice.certPem, key: pki.alice.keyPem, servername: "localhost" }).on("error", () => undefined);

  it("drops connections that never start the TLS handshake, and serves others meanwhile", async () => {
    const silent = Array.from({ length: 50 }, () => connect(server.port, "127.0.0.1").on("error", () => undefined));
    const closed = Promise.all(silent.map(closedAfter));
    expect(await honestCall()).toBe("jobs/ok");
    const times = await closed;
    expect(Math.min(...times)).toBeGreaterThan(timeoutMs * 0.5);
    expect(Math.max(...times)).toBeLessThan(timeoutMs * 10);
    expect(await honestCall()).toBe("jobs/ok");
  });

  it("closes a connection that never makes a call", async () => {
    const idle = session();
    await new Promise((resolve) => idle.once("connect", resolve));
    const goaway = new Promise<void>((resolve) => idle.once("goaway", () => resolve()));
    const after = await closedAfter(idle);
    await goaway;
    expect(after).toBeLessThan(timeoutMs * 10);
    expect(await honestCall()).toBe("jobs/ok");
  });

  it("resets a call whose request never finishes, and answers one that finishes in time on the same connection", async () => {
    const client = session();
    const path = `/${JobQueueService.typeName}/GetJob`;
    const headers = { ":method": "POST", ":path": path, "content-type": "application/grpc+proto", te: "trailers" };
    const message = Buffer.concat(encodeFrameParts(GetJobRequestSchema, create(GetJobRequestSchema, { name: "jobs/slow" })));

    // Drips the message a byte at a time, well past the limit, never ending it.
    const dripping = client.request(headers, { endStream: false });
    dripping.on("error", () => undefined);
    let sent = 0;
    const drip = setInterval(() => sent < message.length && !dripping.closed && dripping.write(message.subarray(sent, ++sent)), timeoutMs / 4);
    const reset = await new Promise<number | undefined>((resolve) => dripping.once("close", () => resolve(dripping.rstCode)));
    clearInterval(drip);
    expect(reset).toBe(http2.constants.NGHTTP2_CANCEL);

    // The same connection still serves a whole request.
    const honest = client.request(headers);
    honest.end(message);
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => honest.once("trailers", resolve).resume());
    expect(trailers["grpc-status"]).toBe("0");
    client.close();
  });

  it("leaves a client stream that sends slowly open past every timeout: it is not one message late", async () => {
    async function* slowly() {
      yield { kind: { case: "open" as const, value: { stream: "streams/1" } } };
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, timeoutMs));
        yield { kind: { case: "batch" as const, value: { seq: BigInt(i) } } };
      }
    }
    const { acceptedBatches } = await clientFor(BufferService, server, pki.alice).publish(slowly());
    expect(acceptedBatches).toBe(3n);
  });

  it("closes the connection of a peer that stops answering (its host hung or gone), and its calls end", async () => {
    let started!: () => void;
    let ended!: () => void;
    const callStarted = new Promise<void>((resolve) => (started = resolve));
    const callEnded = new Promise<"ended">((resolve) => (ended = () => resolve("ended")));
    untilCancelled = { started, ended };
    const message = Buffer.concat(encodeFrameParts(WatchJobRequestSchema, create(WatchJobRequestSchema, { name: "jobs/until-cancelled" })));
    const { caPem: ca, certPem: cert, keyPem: key } = pki.alice;
    const path = `/${JobQueueService.typeName}/WatchJob`;
    const peer = spawn(process.execPath, ["-e", silentPeer, JSON.stringify({ url: server.url, ca, cert, key, path, message: message.toString("base64") })], {
      stdio: "ignore",
    });
    const exited = new Promise((resolve) => peer.once("exit", resolve));
    try {
      await callStarted;
      // Stopped, it answers nothing, and its connection stays open as far as TCP knows.
      peer.kill("SIGSTOP");
      const stopped = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"still open">((resolve) => (timer = setTimeout(() => resolve("still open"), timeoutMs * 10)));
      expect(await Promise.race([callEnded, timedOut])).toBe("ended");
      clearTimeout(timer);
      expect(performance.now() - stopped).toBeGreaterThan(timeoutMs * 0.5);
      expect(await honestCall()).toBe("jobs/ok");
    } finally {
      peer.kill("SIGKILL");
      await exited;
    }
  });

  it("leaves a quiet server stream open past every timeout", async () => {
    const infos: string[] = [];
    for await (const r of clientFor(JobQueueService, server, pki.alice).watchJob({ name: "jobs/1" })) {
      infos.push(r.transition?.info ?? "");
    }
    expect(infos).toEqual(["late but fine"]);
  });
});
