/**
 * The security matrix, as a table: who may do what to a data request owned by
 * alice, its stream, its producer job and the CA, on the whole mesh over mTLS.
 * Each cell is the exact gRPC code the call ends with; the table is printed
 * (the README's security section shows it).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService, type DataRequest } from "../../gen/lclstream/request/v1/request_pb.js";
import { issueOffline } from "../../services/ca/offline.js";
import { startLocalMesh, localTrustDomain, type LocalMesh } from "../../services/cli/local-mesh.js";
import { createMeshTransport } from "../../services/common/client.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { publishMessages } from "../helpers/buffer.js";

type Who = "alice (owner)" | "bob" | "admin" | "no certificate" | "alice claiming admin (XFCC)";
const everyone: Who[] = ["alice (owner)", "bob", "admin", "no certificate", "alice claiming admin (XFCC)"];

/** The code a call ends with, by name ("OK" when it succeeds). */
async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
}

/**
 * The expected table. Reading it: only the owner (and admins) see, watch,
 * read the stream of and cancel a request, and anyone else is told it does
 * not exist; jobs and the CA's audit log are for admins; a forwarded identity
 * is refused from anyone but the front proxy; a stream belongs to the request
 * service that made it (its owner cancels the request, an admin may delete
 * it); nobody gets in without a certificate: the TLS handshake is refused
 * (UNAVAILABLE, saying so).
 */
const expected: Record<string, Record<Who, string>> = {
  "request: GetDataRequest": { "alice (owner)": "OK", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "request: WatchDataRequest": { "alice (owner)": "OK", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "request: CancelDataRequest": { "alice (owner)": "OK", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "buffer: GetStream": { "alice (owner)": "OK", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "buffer: Subscribe": { "alice (owner)": "OK", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "buffer: Ack": { "alice (owner)": "OK", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "buffer: Publish, without the token": { "alice (owner)": "PermissionDenied", bob: "PermissionDenied", admin: "PermissionDenied", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "buffer: Publish, with the token": { "alice (owner)": "OK", bob: "OK", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "buffer: DeleteStream": { "alice (owner)": "PermissionDenied", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "jobs: GetJob (the request's producer job)": { "alice (owner)": "NotFound", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "jobs: CancelJob": { "alice (owner)": "NotFound", bob: "NotFound", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "ca: ListCertificates": { "alice (owner)": "PermissionDenied", bob: "PermissionDenied", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "ca: CreateEnrollmentToken": { "alice (owner)": "PermissionDenied", bob: "PermissionDenied", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "ca: Revoke (alice's certificate)": { "alice (owner)": "OK", bob: "PermissionDenied", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
  "ca: GetTrustBundle": { "alice (owner)": "OK", bob: "OK", admin: "OK", "no certificate": "Unavailable", "alice claiming admin (XFCC)": "PermissionDenied" },
};

describe("the security matrix on the whole mesh", () => {
  let dir: string;
  let mesh: LocalMesh;
  const material = {} as Record<"alice" | "bob" | "admin", CertMaterial & { serialNumber?: string }>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-matrix-"));
    mesh = await startLocalMesh({ stateDir: dir, experiments: { default: ["user/alice", "user/bob"] } });
    material.admin = await readCertDir(mesh.endpoints.certDir);
  }, 60_000);
  afterAll(async () => {
    await mesh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Call options as `who`: alice claiming to be the admin sends the header only the front proxy may. */
  const as = (who: Who) =>
    who === "alice claiming admin (XFCC)" ? { headers: { "x-forwarded-client-cert": `By=spiffe://${localTrustDomain}/service/front;URI=${mesh.endpoints.user}` } } : {};

  /** A transport as `who` to the service at `url`. */
  function transportAs(who: Who, url: string): Transport {
    if (who === "no certificate") return createMeshTransport({ baseUrl: url, tls: { caPem: material.admin.caPem } });
    return createMeshTransport({ baseUrl: url, tls: material[who === "bob" || who === "admin" ? who : "alice"] });
  }

  it("gives each identity exactly the access the policy says, on every call", async () => {
    material.alice = await issueOffline(dir, { identity: "user/alice" });
    material.bob = await issueOffline(dir, { identity: "user/bob" });
    const e = mesh.endpoints;
    const requestsOf = (who: Who) => createClient(DataRequestService, transportAs(who, e.request));
    const bufferOf = (who: Who) => createClient(BufferService, transportAs(who, e.buffer));
    const jobsOf = (who: Who) => createClient(JobQueueService, transportAs(who, e.jobs));
    const caOf = (who: Who) => createClient(CertificateAuthorityService, transportAs(who, e.ca));

    // Fresh objects per cell: a call that succeeds (cancel, delete, revoke) must not change the next cell.
    const producer = { source_identifier: "synthetic:tof:run=1", batch_size: 4, event_source: { type: "synthetic", seed: 1, events: 4000, rate_hz: 10, paced: true }, data_sources: { tof: { type: "digitizer", channels: 1, samples: 32 } } };
    const created: string[] = [];
    async function aliceRequest(): Promise<DataRequest> {
      const { dataRequest } = await requestsOf("alice (owner)").createDataRequest({ dataRequest: { producer, bufferCapacityBytes: 1n << 20n } as never });
      let r = dataRequest!;
      created.push(r.name);
      while (!r.stream || !r.jobs.length) {
        if (r.endTime) throw new Error(`${r.name} ended before it started: ${r.stateReason}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        r = (await requestsOf("alice (owner)").getDataRequest({ name: r.name })).dataRequest!;
      }
      return r;
    }
    /** Runs a call on a fresh request of alice's, then ends that request, whatever the call did. */
    const onFresh = (call: (r: DataRequest) => Promise<unknown>) => async () => {
      const r = await aliceRequest();
      try {
        return await call(r);
      } finally {
        await requestsOf("admin").cancelDataRequest({ name: r.name }).catch(() => undefined);
      }
    };
    const shared = await aliceRequest();
    const stream = await createClient(BufferService, createMeshTransport({ baseUrl: e.buffer, tls: material.admin })).createStream({ stream: { capacityBytes: 1n << 20n } });

    const calls: Record<string, (who: Who) => Promise<unknown>> = {
      "request: GetDataRequest": (who) => requestsOf(who).getDataRequest({ name: shared.name }, as(who)),
      "request: WatchDataRequest": async (who) => {
        for await (const _ of requestsOf(who).watchDataRequest({ name: shared.name }, as(who))) return;
      },
      "request: CancelDataRequest": (who) => onFresh((r) => requestsOf(who).cancelDataRequest({ name: r.name }, as(who)))(),
      "buffer: GetStream": (who) => bufferOf(who).getStream({ name: shared.stream }, as(who)),
      "buffer: Subscribe": async (who) => {
        for await (const _ of bufferOf(who).subscribe({ stream: shared.stream, consumerGroup: "default" }, as(who))) return;
      },
      "buffer: Ack": (who) => bufferOf(who).ack({ stream: shared.stream, consumerGroup: "default", seqs: [] }, as(who)),
      "buffer: Publish, without the token": (who) => bufferOf(who).publish(publishMessages(stream.stream!.name, "not-the-token", 0, 0, 1), as(who)),
      "buffer: Publish, with the token": async (who) => {
        const fresh = await createClient(BufferService, createMeshTransport({ baseUrl: e.buffer, tls: material.admin })).createStream({ stream: { capacityBytes: 1n << 20n } });
        return bufferOf(who).publish(publishMessages(fresh.stream!.name, fresh.publishToken, 0, 0, 1), as(who));
      },
      "buffer: DeleteStream": (who) => onFresh((r) => bufferOf(who).deleteStream({ name: r.stream }, as(who)))(),
      "jobs: GetJob (the request's producer job)": (who) => jobsOf(who).getJob({ name: shared.jobs[0]! }, as(who)),
      "jobs: CancelJob": (who) => onFresh((r) => jobsOf(who).cancelJob({ name: r.jobs[0]! }, as(who)))(),
      "ca: ListCertificates": (who) => caOf(who).listCertificates({}, as(who)),
      "ca: CreateEnrollmentToken": (who) => caOf(who).createEnrollmentToken({ identity: "user/carol", ttl: { seconds: 60n } }, as(who)),
      "ca: Revoke (alice's certificate)": async (who) => {
        // A second certificate of alice's for each cell, so alice's own stays valid for the rest.
        const victim = await issueOffline(dir, { identity: "user/alice" });
        return caOf(who).revoke({ serialNumber: victim.serialNumber }, as(who));
      },
      "ca: GetTrustBundle": (who) => caOf(who).getTrustBundle({}, as(who)),
    };

    const got: Record<string, Record<Who, string>> = {};
    for (const [name, call] of Object.entries(calls)) {
      got[name] = {} as Record<Who, string>;
      for (const who of everyone) got[name][who] = await outcome(() => call(who));
    }
    for (const name of created) await requestsOf("admin").cancelDataRequest({ name }).catch(() => undefined);
    const table = [`| call | ${everyone.join(" | ")} |`, `|---|${everyone.map(() => "---").join("|")}|`, ...Object.entries(got).map(([name, row]) => `| ${name} | ${everyone.map((w) => row[w]).join(" | ")} |`)];
    console.log(table.join("\n"));
    expect(got).toEqual(expected);
  }, 180_000);
});
