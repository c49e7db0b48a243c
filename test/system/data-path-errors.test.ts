/**
 * Every refusal of the data path (Subscribe and Ack, served by the hand-framed
 * direct path) as other gRPC stacks see it: grpcurl (grpc-go, reflection
 * only), grpc-python (the C core) and a grpc-go program. Each must read the
 * exact code, ErrorInfo reason and message the TypeScript client reads.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { build, type BufferServer } from "../../services/buffer/server.js";
import { createMeshTransport } from "../../services/common/client.js";
import { errorInfo } from "../../services/common/errors.js";
import { normalizeSerial, writeCertDir, type CertMaterial } from "../../services/common/pki.js";
import { RevocationSet } from "../../services/common/revocation.js";
import { issueMaterial } from "../../services/common/pki.js";
import { X509Certificate } from "node:crypto";
import { publishMessages } from "../helpers/buffer.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { run, tool } from "../helpers/tools.js";

const pythonClient = fileURLToPath(new URL("../../clients/python/src", import.meta.url));
const goProbe = fileURLToPath(new URL("./probes/go", import.meta.url));
const pythonProbe = fileURLToPath(new URL("./probes/status_probe.py", import.meta.url));
const protoDir = fileURLToPath(new URL("../../proto", import.meta.url));

interface Case {
  what: string;
  method: "Subscribe" | "Ack";
  /** The request, as proto JSON. */
  request: Record<string, unknown>;
  as: "alice" | "bob" | "carol";
  code: Code;
  reason: string;
}

interface Seen {
  code: string;
  reason: string | null;
  message: string;
}

/** Code.NotFound -> NOT_FOUND, as every gRPC implementation names it. */
const codeName = (code: Code) => Code[code]!.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

function runWithInput(file: string, args: string[], input: string, env: Record<string, string>, cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { cwd, env: { ...process.env, ...env }, timeout: 240_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file} ${args.join(" ")} failed: ${stderr || error.message}`)) : resolve(stdout),
    );
    child.stdin!.end(input);
  });
}

describe("data-path refusals through grpcurl, grpc-python and grpc-go", () => {
  let pki: TestPki;
  let dir: string;
  let buffer: BufferServer;
  let carol: CertMaterial;
  const certDirs: Record<Case["as"], string> = { alice: "", bob: "", carol: "" };
  let cases: Case[];
  /** What the TypeScript client read for each case: the reference. */
  let expected: Seen[];

  beforeAll(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), "lclstream-errors-"));
    carol = await issueMaterial(pki.ca, { identity: pki.uri("user", "carol") });
    // Revoked after the CRL the TLS layer holds: refused in-band, with a status.
    const revocations = new RevocationSet();
    revocations.add(normalizeSerial(new X509Certificate(carol.certPem).serialNumber));
    buffer = await build({ stateDir: dir, submitters: ["user/alice"] }, { tls: pki.server, revocations });
    for (const [name, material] of [
      ["alice", pki.alice],
      ["bob", pki.bob],
      ["carol", carol],
    ] as const) {
      certDirs[name] = join(dir, name);
      await writeCertDir(certDirs[name], material);
    }

    const alice = createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: pki.alice }));
    const { stream, publishToken } = await alice.createStream({ stream: { readers: [pki.uri("user", "carol")] } });
    await alice.publish(publishMessages(stream!.name, publishToken, 0, 0, 2));
    let consumerId = "";
    for await (const r of alice.subscribe({ stream: stream!.name, consumerGroup: "default" })) {
      if (r.kind.case === "started") consumerId = r.kind.value.consumerId;
      if (r.seq === 2n) break;
    }
    const s = stream!.name;
    cases = [
      {
        what: "Subscribe to a missing stream",
        method: "Subscribe",
        request: { stream: "streams/nope", consumerGroup: "default" },
        as: "alice",
        code: Code.NotFound,
        reason: "STREAM_NOT_FOUND",
      },
      {
        what: "Subscribe to a group the stream lacks",
        method: "Subscribe",
        request: { stream: s, consumerGroup: "nope" },
        as: "alice",
        code: Code.InvalidArgument,
        reason: "UNKNOWN_GROUP",
      },
      {
        what: "Subscribe by someone who is not a reader",
        method: "Subscribe",
        request: { stream: s, consumerGroup: "default" },
        as: "bob",
        code: Code.NotFound,
        reason: "STREAM_NOT_FOUND",
      },
      {
        what: "Subscribe with a revoked certificate",
        method: "Subscribe",
        request: { stream: s, consumerGroup: "default" },
        as: "carol",
        code: Code.Unauthenticated,
        reason: "CERTIFICATE_REVOKED",
      },
      {
        what: "Ack of a seq never delivered",
        method: "Ack",
        request: { stream: s, consumerGroup: "default", consumerId, seqs: ["99"] },
        as: "alice",
        code: Code.InvalidArgument,
        reason: "UNKNOWN_SEQ",
      },
      {
        what: "Ack for a group the stream lacks",
        method: "Ack",
        request: { stream: s, consumerGroup: "nope", consumerId, seqs: ["1"] },
        as: "alice",
        code: Code.InvalidArgument,
        reason: "UNKNOWN_GROUP",
      },
      {
        what: "Ack by a consumer that never subscribed",
        method: "Ack",
        request: { stream: s, consumerGroup: "default", consumerId: "0123456789abcdef", seqs: ["1"] },
        as: "alice",
        code: Code.NotFound,
        reason: "UNKNOWN_CONSUMER",
      },
      {
        what: "Ack of nothing",
        method: "Ack",
        request: { stream: s, consumerGroup: "default", consumerId },
        as: "alice",
        code: Code.InvalidArgument,
        reason: "INVALID_ARGUMENT",
      },
    ];

    // The reference: what our own client reads, which the code and reason above must match.
    const tls = { alice: pki.alice, bob: pki.bob, carol };
    expected = [];
    for (const c of cases) {
      const client = createClient(BufferService, createMeshTransport({ baseUrl: buffer.url, tls: tls[c.as] }));
      const error = await (async () => {
        if (c.method === "Ack") await client.ack(c.request as never);
        else for await (const _ of client.subscribe(c.request as never));
      })().then(() => undefined, ConnectError.from);
      expect(error, c.what).toBeDefined();
      expect({ what: c.what, code: error!.code, reason: errorInfo(error!)?.reason }).toEqual({ what: c.what, code: c.code, reason: c.reason });
      expected.push({ code: codeName(error!.code), reason: c.reason, message: error!.rawMessage });
    }
  }, 60_000);
  afterAll(async () => {
    await buffer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const target = () => new URL(buffer.url).host;
  const probeInput = () => JSON.stringify(cases.map((c) => ({ target: target(), cert_dir: certDirs[c.as], method: c.method, request: c.request })));
  const lines = (out: string) =>
    out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Seen);

  it("grpcurl reads the code, the message and the ErrorInfo, decoded through reflection", async () => {
    const grpcurl = tool("grpcurl");
    for (const [i, c] of cases.entries()) {
      const d = certDirs[c.as];
      // A revoked certificate is refused reflection too (grpcurl then reports that refusal, without
      // details): give grpcurl the proto files for that case, so the call itself is made.
      const protos =
        c.as === "carol" ? ["-import-path", protoDir, "-proto", "lclstream/buffer/v1/buffer.proto", "-proto", "google/rpc/error_details.proto"] : [];
      const args = [
        "-cacert",
        join(d, "ca.crt"),
        "-cert",
        join(d, "tls.crt"),
        "-key",
        join(d, "tls.key"),
        ...protos,
        "-format-error",
        "-d",
        JSON.stringify(c.request),
        target(),
        `lclstream.buffer.v1.BufferService/${c.method}`,
      ];
      const { code, stdout, stderr } = await run(grpcurl, args);
      expect(code, `${c.what}: ${stderr}`).not.toBe(0);
      // With -format-error grpcurl prints the status as JSON on stderr (messages, if any, on stdout).
      expect(stdout, c.what).toBe("");
      const status = JSON.parse(stderr) as { code: number; message: string; details?: { "@type": string; reason?: string }[] };
      expect({ what: c.what, code: status.code, message: status.message }).toEqual({ what: c.what, code: c.code, message: expected[i]!.message });
      expect(status.details?.find((d) => d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo")?.reason, c.what).toBe(c.reason);
    }
  });

  it("grpc-python reads the code, the ErrorInfo reason and the message", async () => {
    const out = await runWithInput("python3", [pythonProbe], probeInput(), { PYTHONPATH: pythonClient });
    expect(lines(out)).toEqual(expected);
  });

  it("grpc-go reads the code, the ErrorInfo reason and the message", async () => {
    const out = await runWithInput("go", ["run", "."], probeInput(), { GOFLAGS: "-mod=mod" }, goProbe);
    expect(lines(out)).toEqual(expected);
  }, 300_000);
});
