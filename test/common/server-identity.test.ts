import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { callerKey, callerOf } from "../../services/common/peer.js";
import { formatXfcc } from "../../services/common/xfcc.js";
import { issueMaterial } from "../../services/common/pki.js";
import { createTestPki, trustDomain, type TestPki } from "../helpers/pki.js";
import { clientFor, startServer } from "../helpers/servers.js";
import { failure as codeOf } from "../helpers/errors.js";

/** A job service whose GetJob answers with the caller it saw, and counts its calls. */
let handled = 0;
const whoAmI = serve(JobQueueService, {
  getJob: (request, ctx) => {
    handled++;
    return { job: { name: request.name, owner: callerOf(ctx).uri } };
  },
});

/** The enrollment path: GetTrustBundle public, the rest not. */
const enrollment = serve(CertificateAuthorityService, {
  getTrustBundle: (_request, ctx) => ({ trustDomain, caCertificatesPem: [ctx.values.get(callerKey)?.uri ?? "anonymous"] }),
  listCertificates: () => ({}),
});

describe("mTLS identity", () => {
  let pki: TestPki;
  let server: LclstreamServer;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, { services: [whoAmI], proxyIdentity: pki.uri("service", "proxy") });
  });
  afterAll(() => server.close());

  it("gives the handler the identity of a good client's certificate", async () => {
    const { job } = await clientFor(JobQueueService, server, pki.alice).getJob({ name: "jobs/1" });
    expect(job?.owner).toBe(`spiffe://${trustDomain}/user/alice`);
    const bob = await clientFor(JobQueueService, server, pki.bob).getJob({ name: "jobs/1" });
    expect(bob.job?.owner).toBe(`spiffe://${trustDomain}/user/bob`);
  });

  // TLS 1.3 refuses a client certificate after the client finished its side of
  // the handshake: a missing one with an alert, a foreign one by closing the
  // connection unanswered. The client says UNAVAILABLE and why, either way.
  it("refuses a client with no certificate, and one from another CA, before any handler runs", async () => {
    const before = handled;
    for (const tls of [pki.anonymous, pki.stranger]) {
      const result = await codeOf(clientFor(JobQueueService, server, tls).getJob({ name: "jobs/1" }));
      expect(result.code).toBe(Code.Unavailable);
      expect(result.message).toMatch(/(refused the TLS handshake|refused this client's certificate).*lclstream enroll/);
    }
    expect(handled).toBe(before);
  });

  it("tells a client without a certificate what the refused handshake means", async () => {
    const refused = await codeOf(clientFor(JobQueueService, server, pki.anonymous).getJob({ name: "jobs/1" }));
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.message).toMatch(/refused the TLS handshake \(alert certificate required\).*lclstream enroll/);
  });

  it("refuses x-forwarded-client-cert from a peer that is not the proxy", async () => {
    const forged = formatXfcc({ URI: [pki.uri("user", "bob")] });
    const result = await codeOf(clientFor(JobQueueService, server, pki.alice).getJob({ name: "jobs/1" }, { headers: { "x-forwarded-client-cert": forged } }));
    expect(result.code).toBe(Code.PermissionDenied);
    expect(result.reason).toBe("FORWARDED_IDENTITY_REFUSED");
  });

  it("honours x-forwarded-client-cert from the proxy identity", async () => {
    const header = formatXfcc({ By: [pki.uri("service", "proxy")], Hash: ["00ff"], URI: [pki.uri("user", "bob")] });
    const { job } = await clientFor(JobQueueService, server, pki.proxy).getJob({ name: "jobs/1" }, { headers: { "x-forwarded-client-cert": header } });
    expect(job?.owner).toBe(pki.uri("user", "bob"));
  });

  it("takes the proxy's identity written short (service/front), as the other identities of a config are", async () => {
    const short = await startServer(pki, { services: [whoAmI], proxyIdentity: "service/proxy" });
    try {
      const header = formatXfcc({ By: [pki.uri("service", "proxy")], Hash: ["00ff"], URI: [pki.uri("user", "bob")] });
      const { job } = await clientFor(JobQueueService, short, pki.proxy).getJob({ name: "jobs/1" }, { headers: { "x-forwarded-client-cert": header } });
      expect(job?.owner).toBe(pki.uri("user", "bob"));
    } finally {
      await short.close();
    }
  });

  it("treats a proxied client without an identity in the trust domain as unauthenticated", async () => {
    const header = formatXfcc({ By: [pki.uri("service", "proxy")], URI: ["spiffe://elsewhere.org/user/bob"] });
    const result = await codeOf(clientFor(JobQueueService, server, pki.proxy).getJob({ name: "jobs/1" }, { headers: { "x-forwarded-client-cert": header } }));
    expect(result.code).toBe(Code.Unauthenticated);
  });
});

describe("a listener that does not require client certificates", () => {
  let pki: TestPki;
  let server: LclstreamServer;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startServer(pki, {
      services: [enrollment],
      requireClientCert: false,
      publicProcedures: ["/lclstream.ca.v1.CertificateAuthorityService/GetTrustBundle"],
    });
  });
  afterAll(() => server.close());

  it("serves public procedures to anonymous clients", async () => {
    const res = await clientFor(CertificateAuthorityService, server, pki.anonymous).getTrustBundle({});
    expect(res.caCertificatesPem).toEqual(["anonymous"]);
  });

  it("still sees the identity of a client that presents a certificate", async () => {
    const res = await clientFor(CertificateAuthorityService, server, pki.alice).getTrustBundle({});
    expect(res.caCertificatesPem).toEqual([pki.uri("user", "alice")]);
  });

  it("tells a client whose certificate has no identity in the trust domain that it is the wrong certificate", async () => {
    const host = await issueMaterial(pki.ca, { identity: "spiffe://elsewhere.org/host/x", dnsNames: ["node7.example.org"] });
    const result = await codeOf(clientFor(CertificateAuthorityService, server, host).listCertificates({}));
    expect(result.code).toBe(Code.Unauthenticated);
    expect(result.reason).toBe("CERTIFICATE_WITHOUT_IDENTITY");
    expect(result.message).toContain("DNS:node7.example.org");
    expect(result.message).toContain(`spiffe://${trustDomain}/user/`);
  });

  it("refuses other procedures without a certificate, and with a foreign one", async () => {
    for (const tls of [pki.anonymous, pki.stranger]) {
      const result = await codeOf(clientFor(CertificateAuthorityService, server, tls).listCertificates({}));
      expect(result.code).toBe(Code.Unauthenticated);
      expect(result.reason).toBe("CLIENT_CERTIFICATE_REQUIRED");
      expect(result.message).toContain("lclstream enroll");
    }
  });
});
