/**
 * Property-based fuzzing of every RPC of every service on the whole mesh:
 * random and hostile request messages (fast-check, from the descriptors),
 * then random bytes in place of a message. Every answer must be a canonical
 * code a client can act on, never INTERNAL or UNKNOWN, and every refusal must
 * carry an ErrorInfo reason and a message; afterwards every service still
 * serves and nothing was written outside the mesh's state directory.
 *
 * Bounded in time: LCLSTREAM_FUZZ_MS per method (default 500 ms) for messages
 * and half of it for bytes. The mesh's own user is an admin, so calls reach
 * past authorization into validation; job scripts are set to `exit 0` so no
 * random text is ever run.
 */
import { once } from "node:events";
import * as http2 from "node:http2";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { startLocalMesh, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { errorInfo } from "../../services/common/errors.js";
import { frameHeader } from "../../services/common/grpc-frames.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { arbitraryMessage } from "../helpers/arbitrary-message.js";

const budgetMs = Number(process.env.LCLSTREAM_FUZZ_MS ?? 500);
/** How long a server stream may stay open before the fuzzer leaves it (an open stream is a fine answer). */
const streamPatienceMs = 100;

const services: [DescService, "ca" | "jobs" | "buffer" | "producer" | "request"][] = [
  [CertificateAuthorityService, "ca"],
  [JobQueueService, "jobs"],
  [BufferService, "buffer"],
  [ProducerService, "producer"],
  [DataRequestService, "request"],
];

/** Codes a fuzzed call may end with: a refusal a client can act on, or our own giving up on an open stream. */
const acceptable = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.ResourceExhausted,
  Code.Unimplemented,
]);

/** What was tried and how each call ended, for the report. */
const tally = new Map<string, number>();
const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);

/** Runs a property for `ms`; a failure says what broke and a shortened counterexample (one may hold 70 kB strings). */
async function check<T>(property: fc.IAsyncProperty<[T]>, ms: number) {
  const result = await fc.check(property, { numRuns: 1_000_000, interruptAfterTimeLimit: ms });
  if (!result.failed) return;
  if (result.interrupted && result.numRuns === 0) throw new Error(`no input was answered within ${ms} ms`);
  const example = fc.stringify(result.counterexample).replace(/(.)\1{40,}/g, (run, c: string) => `${c.repeat(8)}…(${run.length})`);
  throw new Error(`${(result.errorInstance as Error)?.message}\n  seed ${result.seed}, counterexample ${example.slice(0, 2000)}`);
}

describe("fuzzing every RPC on the whole mesh", () => {
  let root: string;
  let mesh: LocalMesh;
  let admin: CertMaterial;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "lclstream-fuzz-"));
    mesh = await startLocalMesh({ stateDir: join(root, "state") });
    admin = await readCertDir(mesh.endpoints.certDir);
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(root, { recursive: true, force: true });
    console.log(`fuzzed: ${[...tally].map(([k, n]) => `${k} ${n}`).join(", ")}`);
  });

  type AnyClient = Record<string, (...args: unknown[]) => unknown>;
  /**
   * Makes the call with `message` and checks how it ended. A unary call must
   * answer within 5 s; a stream still open after a moment is a fine answer.
   */
  async function call(client: AnyClient, method: DescMethod, message: unknown): Promise<void> {
    const giveUp = new AbortController();
    const timer = method.methodKind === "unary" ? undefined : setTimeout(() => giveUp.abort(), streamPatienceMs);
    try {
      const options = { signal: giveUp.signal, timeoutMs: 5000 };
      if (method.methodKind === "unary") await client[method.localName]!(message, options);
      else if (method.methodKind === "server_streaming") {
        for await (const _ of client[method.localName]!(message, options) as AsyncIterable<unknown>) break;
      } else {
        const messages = message as unknown[];
        await client[method.localName]!(
          (async function* () {
            yield* messages;
          })(),
          options,
        );
      }
      count("OK");
    } catch (error) {
      const e = ConnectError.from(error);
      if (giveUp.signal.aborted && e.code === Code.Canceled) return void count("still open");
      count(Code[e.code]);
      if (!acceptable.has(e.code)) throw new Error(`${method.name} ended ${Code[e.code]}: ${e.rawMessage}`);
      if (!errorInfo(e)?.reason?.match(/^[A-Z][A-Z0-9_]*$/))
        throw new Error(`${method.name} refused with ${Code[e.code]} but no ErrorInfo reason: ${e.rawMessage}`);
      if (e.rawMessage.length < 10) throw new Error(`${method.name} refused with a message that says nothing: "${e.rawMessage}"`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Random bytes as the request message, on a raw HTTP/2 stream: resolves with the grpc-status. */
  async function callWithBytes(session: http2.ClientHttp2Session, method: DescMethod, bytes: Uint8Array): Promise<string> {
    const stream = session.request({
      ":method": "POST",
      ":path": `/${method.parent.typeName}/${method.name}`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => undefined);
    stream.end(Buffer.concat([frameHeader(bytes.byteLength), bytes]));
    const status = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve("still open"), streamPatienceMs);
      stream.on("response", (h) => h["grpc-status"] !== undefined && resolve(String(h["grpc-status"])));
      stream.on("trailers", (t) => resolve(String(t["grpc-status"])));
      stream.on("close", () => resolve(`reset ${stream.rstCode}`));
      stream.on("end", () => clearTimeout(timer));
      stream.resume();
    });
    // Only a stream left open is reset: resetting every answered one too trips HTTP/2's guard
    // against rapid resets (nghttp2 allows a burst of 1000, then 33 a second), and the server
    // rightly closes the session.
    if (status === "still open") stream.close(http2.constants.NGHTTP2_CANCEL);
    else if (!stream.closed) await Promise.race([once(stream, "close"), sleep(1000).then(() => stream.close(http2.constants.NGHTTP2_CANCEL))]);
    return status;
  }

  for (const [service, endpoint] of services) {
    for (const method of service.methods) {
      it(`${service.name}.${method.name}: random messages get a clear refusal or an answer, never INTERNAL`, async () => {
        const url = mesh.endpoints[endpoint];
        const client = createClient(service, createMeshTransport({ baseUrl: url, tls: admin })) as unknown as AnyClient;
        let arbitrary: fc.Arbitrary<unknown> = arbitraryMessage(method.input);
        // Validation, not execution: no random text runs as a job script.
        if (method === JobQueueService.method.submitJob) arbitrary = arbitrary.map((m: any) => (m.spec ? ((m.spec.script = "exit 0"), m) : m));
        if (method.methodKind === "client_streaming") arbitrary = fc.array(arbitrary, { minLength: 1, maxLength: 3 });
        // The first call of a method may be slow (a catalog to read); the time budget is for the rest.
        await call(client, method, fc.sample(arbitrary, { numRuns: 1, seed: 1 })[0]);
        await check(
          fc.asyncProperty(arbitrary, (message) => call(client, method, message)),
          budgetMs,
        );

        const session = http2.connect(url, { ca: admin.caPem, cert: admin.certPem, key: admin.keyPem, servername: "localhost" }).on("error", () => undefined);
        await check(
          fc.asyncProperty(fc.uint8Array({ maxLength: 256 }), async (bytes) => {
            const status = await callWithBytes(session, method, bytes);
            if (session.destroyed) return; // the time was up and the session closed under this call
            count(`bytes: ${status === "0" || status === "still open" ? status : (Code[Number(status)] ?? status)}`);
            // OK when the bytes happen to parse, INVALID_ARGUMENT when not: never INTERNAL, UNKNOWN or a reset.
            if (status !== "0" && status !== "still open" && !acceptable.has(Number(status))) throw new Error(`${method.name} answered bytes with ${status}`);
          }),
          Math.max(budgetMs / 2, streamPatienceMs * 3),
        ).finally(() => session.destroy());
      }, 30_000);
    }
  }

  it("leaves every service serving and nothing written outside the state directory", async () => {
    for (const [service, endpoint] of services) {
      const health = createClient(Health, createMeshTransport({ baseUrl: mesh.endpoints[endpoint], tls: admin }));
      expect((await health.check({ service: service.typeName })).status).toBe(Serving.SERVING);
    }
    expect(readdirSync(root)).toEqual(["state"]);
    const canaries = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
        d.isDirectory() ? canaries(join(dir, d.name)) : d.name.includes("escape-canary") ? [join(dir, d.name)] : [],
      );
    expect(canaries(root)).toEqual([]);
    expect(existsSync(join(process.cwd(), "escape-canary"))).toBe(false);
  });
});
