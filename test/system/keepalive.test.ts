/**
 * The servers' keepalive pings, seen by other gRPC stacks than ours: grpcurl
 * (grpc-go) and the Python grpcio client (grpc C core) answer them, so a
 * quiet server stream outlasting several ping timeouts completes for them
 * instead of being cut as a peer that stopped answering.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { JobQueueService, WatchJobRequestSchema } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { abortable } from "../../services/common/abortable.js";
import { writeCertDir } from "../../services/common/pki.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { startServer } from "../helpers/servers.js";
import { run, tool } from "../helpers/tools.js";

const timeoutMs = 300;

/** Calls WatchJob with grpcio (no generated code: bytes in, bytes out) and prints how many messages came. */
const grpcioWatch = `
import sys, grpc
port, certs, request = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
read = lambda name: open(f"{certs}/{name}", "rb").read()
credentials = grpc.ssl_channel_credentials(read("ca.crt"), read("tls.key"), read("tls.crt"))
with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
    watch = channel.unary_stream("/lclstream.jobs.v1.JobQueueService/WatchJob")
    print(len(list(watch(request, timeout=30))))
`;

describe("keepalive pings answered by grpc-go and grpc C core clients", () => {
  let pki: TestPki;
  let server: LclstreamServer;
  let dir: string;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      keepaliveIntervalMs: timeoutMs / 3,
      keepaliveTimeoutMs: timeoutMs,
      services: [
        serve(JobQueueService, {
          // Quiet for several keepalive timeouts, then one message.
          async *watchJob(req, ctx) {
            await abortable(new Promise((resolve) => setTimeout(resolve, timeoutMs * 5)), ctx.signal);
            yield { transition: { info: `late for ${req.name}` } };
          },
        }),
      ],
    });
    dir = await mkdtemp(join(tmpdir(), "lclstream-keepalive-"));
    await writeCertDir(join(dir, "alice"), pki.alice);
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("grpcurl's stream outlasts the pings", async () => {
    const c = join(dir, "alice");
    const { code, stdout, stderr } = await run(tool("grpcurl"), [
      ...["-cacert", join(c, "ca.crt"), "-cert", join(c, "tls.crt"), "-key", join(c, "tls.key")],
      ...["-d", '{"name": "jobs/1"}', `127.0.0.1:${server.port}`, "lclstream.jobs.v1.JobQueueService/WatchJob"],
    ]);
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ transition: { info: "late for jobs/1" } });
  });

  it("grpcio's stream outlasts the pings", async () => {
    const request = Buffer.from(toBinary(WatchJobRequestSchema, create(WatchJobRequestSchema, { name: "jobs/2" }))).toString("hex");
    const { code, stdout, stderr } = await run("python3", ["-c", grpcioWatch, String(server.port), join(dir, "alice"), request]);
    expect(code, stderr).toBe(0);
    expect(stdout.trim()).toBe("1");
  });
});
