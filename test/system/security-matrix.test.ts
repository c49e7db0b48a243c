/**
 * The security matrix: every RPC of every service called as each identity on
 * the whole mesh over mTLS, each cell the exact gRPC code the call ends with.
 * The expected table is the one in docs/reliability.md (between
 * its `security-matrix` markers), so the documentation cannot drift from what
 * the mesh does; the observed table is printed.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { ProducerService } from "../../gen/lclstream/producer/v1/producer_pb.js";
import { DataRequestService, type DataRequest } from "../../gen/lclstream/request/v1/request_pb.js";
import { issueOffline } from "../../services/ca/offline.js";
import { startLocalMesh, localTrustDomain, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { identityUri } from "../../services/common/identity.js";
import { createCertificateAuthority, createCsr, generateKeyPair, issueMaterial, readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { publishMessages } from "../helpers/buffer.js";
import { internalConfig } from "../helpers/producer-config.js";

/** The columns: who calls. */
const everyone = [
  "alice (owner)",
  "bob",
  "admin",
  "producer",
  "proxy for alice",
  "proxy itself",
  "forged XFCC",
  "no cert",
  "other CA",
  "expired",
  "revoked",
] as const;
type Who = (typeof everyone)[number];

/** The code a call ends with, by name ("OK" when it succeeds). */
async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
}

/** The guide's matrix: row name -> column -> code. */
function documentedMatrix(): Record<string, Record<string, string>> {
  const readme = readFileSync(new URL("../../docs/reliability.md", import.meta.url), "utf8");
  const section = /<!-- security-matrix:start -->([\s\S]*?)<!-- security-matrix:end -->/.exec(readme)?.[1];
  if (!section) throw new Error("docs/reliability.md has no security matrix between <!-- security-matrix:start --> and <!-- security-matrix:end -->");
  const rows = section
    .trim()
    .split("\n")
    .filter((line) => line.startsWith("|"))
    .map((line) =>
      line
        .slice(1, -1)
        .split("|")
        .map((cell) => cell.trim()),
    );
  const [header, , ...body] = rows;
  return Object.fromEntries(body.map(([name, ...cells]) => [name!.replace(/`/g, ""), Object.fromEntries(header!.slice(1).map((who, i) => [who, cells[i]!]))]));
}

describe("the security matrix on the whole mesh", () => {
  let dir: string;
  let mesh: LocalMesh;
  const tls = {} as Record<"alice" | "bob" | "admin" | "producer" | "front" | "stranger" | "expired" | "revoked", CertMaterial>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-matrix-"));
    // The front's URL only tells consumers where the buffer is; nothing listens there, and calls here go direct.
    mesh = await startLocalMesh({ stateDir: dir, front: { url: "https://127.0.0.1:9" }, experiments: { default: ["user/alice", "user/bob"] } });
    tls.admin = await readCertDir(mesh.endpoints.certDir);
    tls.front = await readCertDir(join(dir, "certs", "front"));
    tls.alice = await issueOffline(dir, { identity: "user/alice" });
    tls.bob = await issueOffline(dir, { identity: "user/bob" });
    tls.producer = await issueOffline(dir, { identity: "service/producer" });
    tls.expired = await issueOffline(dir, { identity: "user/alice", lifetimeMs: 1000 });
    const foreign = await createCertificateAuthority({ trustDomain: localTrustDomain, commonName: "someone else's CA" });
    tls.stranger = { ...(await issueMaterial(foreign, { identity: identityUri(localTrustDomain, "user", "alice") })), caPem: tls.admin.caPem };
    const revoked = await issueOffline(dir, { identity: "user/alice" });
    tls.revoked = revoked;
    await createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: mesh.endpoints.ca, tls: tls.admin })).revoke({
      serialNumber: revoked.serialNumber,
    });
    // Until every service has the revocation (and the expired certificate has expired), the table would be racing.
    for (const url of [mesh.endpoints.ca, mesh.endpoints.jobs, mesh.endpoints.buffer, mesh.endpoints.producer, mesh.endpoints.request]) {
      for (const refused of [tls.revoked, tls.expired]) {
        for (let tries = 0; ; tries++) {
          const code = await outcome(() => createClient(Health, createMeshTransport({ baseUrl: url, tls: refused })).check({}));
          if (code === "Unavailable") break;
          if (tries > 100) throw new Error(`${url} still accepts a certificate it should refuse (${code})`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const aliceUri = () => identityUri(localTrustDomain, "user", "alice");
  /** The headers `who` sends: the proxy forwards alice's certificate as Envoy does; alice forges the same header claiming admin. */
  function headersOf(who: Who): Record<string, string> {
    const by = `By=${identityUri(localTrustDomain, "service", "front")}`;
    if (who === "proxy for alice") return { "x-forwarded-client-cert": `${by};Cert="${encodeURIComponent(tls.alice.certPem)}";URI=${aliceUri()}` };
    if (who === "forged XFCC") return { "x-forwarded-client-cert": `${by};URI=${mesh.endpoints.user}` };
    return {};
  }
  const as = (who: Who) => ({ headers: headersOf(who) });

  /** A transport as `who` to the service at `url`: each gets a fresh connection, so revocations and expiry meet a new handshake. */
  function transportAs(who: Who, url: string): Transport {
    const material: Record<Who, CertMaterial | Pick<CertMaterial, "caPem">> = {
      "alice (owner)": tls.alice,
      bob: tls.bob,
      admin: tls.admin,
      producer: tls.producer,
      "proxy for alice": tls.front,
      "proxy itself": tls.front,
      "forged XFCC": tls.alice,
      "no cert": { caPem: tls.admin.caPem },
      "other CA": tls.stranger,
      expired: tls.expired,
      revoked: tls.revoked,
    };
    return createMeshTransport({ baseUrl: url, tls: material[who] });
  }

  it("gives each identity exactly the access the policy says, on every RPC of every service", async () => {
    const e = mesh.endpoints;
    const requestsOf = (who: Who) => createClient(DataRequestService, transportAs(who, e.request));
    const bufferOf = (who: Who) => createClient(BufferService, transportAs(who, e.buffer));
    const jobsOf = (who: Who) => createClient(JobQueueService, transportAs(who, e.jobs));
    const producerOf = (who: Who) => createClient(ProducerService, transportAs(who, e.producer));
    const caOf = (who: Who) => createClient(CertificateAuthorityService, transportAs(who, e.ca));
    const adminRequests = requestsOf("admin");
    const adminBuffer = bufferOf("admin");
    const adminCa = caOf("admin");

    // Fresh objects per cell where a call changes something (cancel, delete, revoke), so no cell depends on another.
    const producer = internalConfig(
      4000,
      { tof: { type: "SyntheticDigitizer", channels: 1, samples: 32 } },
      { seed: 1, rateHz: 10, paced: true, batchSize: 4 },
    );
    const created: string[] = [];
    async function started(r: DataRequest): Promise<DataRequest> {
      created.push(r.name);
      while (!r.stream || !r.jobs.length) {
        if (r.endTime) throw new Error(`${r.name} ended before it started: ${r.stateReason}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        r = (await adminRequests.getDataRequest({ name: r.name })).dataRequest!;
      }
      return r;
    }
    const aliceRequest = async () =>
      started((await requestsOf("alice (owner)").createDataRequest({ dataRequest: { producer, bufferCapacityBytes: 1n << 20n } as never })).dataRequest!);
    /** Runs a call on a fresh request of alice's, then ends that request, whatever the call did. */
    const onFresh = (call: (r: DataRequest) => Promise<unknown>) => async () => {
      const r = await aliceRequest();
      try {
        return await call(r);
      } finally {
        await adminRequests.cancelDataRequest({ name: r.name }).catch(() => undefined);
      }
    };
    const shared = await aliceRequest();
    // Seq 1 delivered once (and taken back when the consumer leaves), so an allowed Ack of it is OK.
    for await (const r of adminBuffer.subscribe({ stream: shared.stream, consumerGroup: "default" })) if (r.kind.case === "batch") break;
    const freshStream = async () => await adminBuffer.createStream({ stream: { capacityBytes: 1n << 20n } });
    const unrelated = await freshStream();
    /** A job of the admin's that has ended, fresh for each cell (a start changes it). */
    const finishedJob = async () => {
      const { job } = await jobsOf("admin").submitJob({ spec: { name: "matrix", script: "exit 0" } }, as("admin"));
      for await (const _ of jobsOf("admin").watchJob({ name: job!.name }, as("admin"))) {
        // to its end
      }
      return job!.name;
    };
    const first = async (messages: AsyncIterable<unknown>) => {
      for await (const _ of messages) return;
    };

    const calls: Record<string, (who: Who) => Promise<unknown>> = {
      "request: CreateDataRequest": async (who) => {
        const { dataRequest } = await requestsOf(who).createDataRequest({ dataRequest: { producer, bufferCapacityBytes: 1n << 20n } as never }, as(who));
        created.push(dataRequest!.name);
      },
      "request: GetDataRequest": (who) => requestsOf(who).getDataRequest({ name: shared.name }, as(who)),
      "request: ListDataRequests": (who) => requestsOf(who).listDataRequests({}, as(who)),
      "request: CancelDataRequest": (who) => onFresh((r) => requestsOf(who).cancelDataRequest({ name: r.name }, as(who)))(),
      "request: WatchDataRequest": (who) => first(requestsOf(who).watchDataRequest({ name: shared.name }, as(who))),
      "buffer: CreateStream": (who) => bufferOf(who).createStream({ stream: { capacityBytes: 1n << 20n } }, as(who)),
      "buffer: GetStream": (who) => bufferOf(who).getStream({ name: shared.stream }, as(who)),
      "buffer: ListStreams": (who) => bufferOf(who).listStreams({}, as(who)),
      "buffer: DeleteStream": (who) => onFresh((r) => bufferOf(who).deleteStream({ name: r.stream }, as(who)))(),
      "buffer: Publish, without the token": (who) => bufferOf(who).publish(publishMessages(unrelated.stream!.name, "not-the-token", 0, 0, 1), as(who)),
      "buffer: Publish, with the token": async (who) => {
        const fresh = await freshStream();
        return bufferOf(who).publish(publishMessages(fresh.stream!.name, fresh.publishToken, 0, 0, 1), as(who));
      },
      "buffer: Subscribe": (who) => first(bufferOf(who).subscribe({ stream: shared.stream, consumerGroup: "default" }, as(who))),
      "buffer: Ack": (who) => bufferOf(who).ack({ stream: shared.stream, consumerGroup: "default", seqs: [1n] }, as(who)),
      "jobs: ListBackends": (who) => jobsOf(who).listBackends({}, as(who)),
      "jobs: SubmitJob": (who) => jobsOf(who).submitJob({ spec: { name: "matrix", script: "exit 0" } }, as(who)),
      "jobs: GetJob (the request's producer job)": (who) => jobsOf(who).getJob({ name: shared.jobs[0]! }, as(who)),
      "jobs: ListJobs": (who) => jobsOf(who).listJobs({}, as(who)),
      "jobs: CancelJob": (who) => onFresh((r) => jobsOf(who).cancelJob({ name: r.jobs[0]! }, as(who)))(),
      "jobs: StartJob (a finished job of the admin's)": async (who) => jobsOf(who).startJob({ name: await finishedJob() }, as(who)),
      "jobs: WatchJob": (who) => first(jobsOf(who).watchJob({ name: shared.jobs[0]! }, as(who))),
      "jobs: StreamJobLogs": (who) => first(jobsOf(who).streamJobLogs({ name: shared.jobs[0]! }, as(who))),
      "producer: ListSources": (who) => producerOf(who).listSources({}, as(who)),
      "producer: Produce": (who) =>
        first(producerOf(who).produce({ config: { ...producer, event_source: { type: "InternalEventSource", number_of_events_to_generate: 4 } } }, as(who))),
      "producer: GetStatus": (who) => producerOf(who).getStatus({}, as(who)),
      "ca: GetTrustBundle": (who) => caOf(who).getTrustBundle({}, as(who)),
      "ca: CreateEnrollmentToken": (who) => caOf(who).createEnrollmentToken({ identity: "user/carol", ttl: { seconds: 60n } }, as(who)),
      "ca: Enroll (with a valid token)": async (who) => {
        const { secret } = await adminCa.createEnrollmentToken({ identity: "user/carol", ttl: { seconds: 60n } });
        const csrPem = await createCsr(await generateKeyPair(), "p256", identityUri(localTrustDomain, "user", "carol"));
        return caOf(who).enroll({ token: secret, csrPem }, as(who));
      },
      "ca: Renew (the caller's own certificate)": async (who) => {
        const identity =
          who === "producer"
            ? identityUri(localTrustDomain, "service", "producer")
            : who === "admin"
              ? mesh.endpoints.user
              : who === "bob"
                ? identityUri(localTrustDomain, "user", "bob")
                : who === "proxy itself"
                  ? identityUri(localTrustDomain, "service", "front")
                  : aliceUri();
        const csrPem = await createCsr(
          await generateKeyPair(),
          "p256",
          identity,
          who === "proxy itself" ? ["localhost"] : [],
          who === "proxy itself" ? ["127.0.0.1"] : [],
        );
        return caOf(who).renew({ csrPem }, as(who));
      },
      "ca: Revoke (a certificate of alice's)": async (who) => {
        // A certificate of alice's of its own for each cell, so alice's own stays valid for the rest.
        const victim = await issueOffline(dir, { identity: "user/alice" });
        return caOf(who).revoke({ serialNumber: victim.serialNumber }, as(who));
      },
      "ca: ListCertificates": (who) => caOf(who).listCertificates({}, as(who)),
      "ca: GetRevocationList": (who) => caOf(who).getRevocationList({}, as(who)),
      "ca: WatchRevocations": (who) => first(caOf(who).watchRevocations({}, as(who))),
    };

    const got: Record<string, Record<string, string>> = {};
    for (const [name, call] of Object.entries(calls)) {
      got[name] = {};
      for (const who of everyone) got[name][who] = await outcome(() => call(who));
    }
    for (const name of created) await adminRequests.cancelDataRequest({ name }).catch(() => undefined);
    const table = [
      `| call | ${everyone.join(" | ")} |`,
      `|---|${everyone.map(() => "---").join("|")}|`,
      ...Object.entries(got).map(([name, row]) => `| ${name} | ${everyone.map((w) => row[w]).join(" | ")} |`),
    ];
    console.log(table.join("\n"));
    expect(got).toEqual(documentedMatrix());
  }, 600_000);
});
