/**
 * Revocation as every service enforces it (a server following the CA's CRL
 * and WatchRevocations feed), client-side renewal without dropping open
 * streams, and CA state across a restart.
 */
import "reflect-metadata";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient, type Client } from "@connectrpc/connect";
import * as x509 from "@peculiar/x509";
import { CertificateAuthorityService, Certificate_Issuance, Certificate_State } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import { createServer, type LclstreamServer } from "../../services/common/server.js";
import { joinMesh, type MeshMembership } from "../../services/common/mesh.js";
import { CertificateKeeper, createRenewingTransport, describeCertificate } from "../../services/common/renewal.js";
import { createCsr, generateKeyPair, normalizeSerial, readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { createLogger } from "../../services/common/logger.js";
import { issueOffline } from "../../services/ca/offline.js";
import { enroll } from "../../services/ca/enroll-client.js";
import { caTrustDomain, startTestCa, type TestCa } from "../helpers/ca.js";
import { codeAndReason as failure } from "../helpers/errors.js";

/** The next message of a stream, or the error that ended it, within `ms`. */
async function nextOf<T>(it: AsyncIterator<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r.done) throw new Error("the stream ended without an error");
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

describe("revocation and renewal", () => {
  let ca: TestCa;
  let probe: LclstreamServer;
  let probeTls: CertMaterial & { serialNumber: string };
  let membership: MeshMembership;
  const admin = () => createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: ca.server.url, tls: ca.admin }));
  const healthOf = (tls: CertMaterial): Client<typeof Health> => createClient(Health, createMeshTransport({ baseUrl: probe.url, tls }));
  const user = (name: string) => issueOffline(ca.stateDir, { identity: `user/${name}` });

  beforeAll(async () => {
    ca = await startTestCa();
    // Another service of the mesh, joined as every service joins: following the
    // CA's revocations, and renewing its own certificate, here one minute from
    // expiry (with the 5-minute backdating, past two thirds of its life).
    probeTls = await issueOffline(ca.stateDir, { identity: "service/probe", ipAddresses: ["127.0.0.1"], lifetimeMs: 60_000 });
    membership = await joinMesh({ tls: probeTls, caUrl: ca.server.url, logger: createLogger("probe") });
    probe = await createServer({ name: "probe", tls: membership.tls, trustDomain: caTrustDomain, revocations: membership.revocations, services: [] });
    membership.attach(probe);
  });
  afterAll(async () => {
    membership?.leave();
    await probe?.close();
    await ca.cleanup();
  });

  it("renews a service's own certificate before expiry and serves the new one", async () => {
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({
          host: "127.0.0.1",
          port: probe.port,
          ca: probeTls.caPem,
          cert: ca.admin.certPem,
          key: ca.admin.keyPem,
          ALPNProtocols: ["h2"],
        });
        socket.once("secureConnect", () => {
          resolve(normalizeSerial(socket.getPeerCertificate().serialNumber));
          socket.destroy();
        });
        socket.once("error", reject);
      });
    await expect.poll(servedSerial, { timeout: 5000 }).not.toBe(probeTls.serialNumber);
    const served = describeCertificate(membership.tls.certPem);
    expect(await servedSerial()).toBe(served.serialNumber);
    expect(served.identity).toBe(`spiffe://${caTrustDomain}/service/probe`);
    expect(served.ipAddresses).toEqual(["127.0.0.1"]);
    expect(served.notAfter - Date.now()).toBeGreaterThan(6 * 24 * 3_600_000);
  });

  it("ends a revoked certificate's open stream, refuses its new calls and connections, and lists it in the CRL", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const aliceHealth = healthOf(alice);
    const watch = aliceHealth.watch({})[Symbol.asyncIterator]();
    expect((await nextOf(watch)).status).toBe(Status.SERVING);

    const revoked = await admin().revoke({ serialNumber: alice.serialNumber, reason: 1 });
    expect(revoked.certificate?.state).toBe(Certificate_State.REVOKED);
    expect(revoked.certificate?.revocation?.revoker).toBe(`spiffe://${caTrustDomain}/user/admin`);

    // The open stream ends within seconds, with the reason.
    const ended = await failure(nextOf(watch));
    expect(ended).toEqual({ code: Code.Unauthenticated, reason: "CERTIFICATE_REVOKED" });
    // New calls on the same connection are refused.
    expect(await failure(aliceHealth.check({}))).toEqual({ code: Code.Unauthenticated, reason: "CERTIFICATE_REVOKED" });
    // A new connection fails the TLS handshake once the probe has the new CRL.
    await expect.poll(async () => (await failure(healthOf(alice).check({}))).reason, { timeout: 5000 }).toBeUndefined();
    expect((await failure(healthOf(alice).check({}))).code).toBe(Code.Unavailable);
    // Bob is untouched.
    expect((await healthOf(bob).check({})).status).toBe(Status.SERVING);

    // The signed CRL lists the serial.
    const res = await admin().getRevocationList({});
    const crl = new x509.X509Crl(res.crlPem);
    expect(await crl.verify({ publicKey: new x509.X509Certificate(ca.server.caCertificatePem) })).toBe(true);
    expect(crl.entries.map((e) => normalizeSerial(e.serialNumber))).toContain(alice.serialNumber);
    expect(crl.issuer).toBe(new x509.X509Certificate(ca.server.caCertificatePem).subject);
    expect(res.crlNumber).toBeGreaterThan(0n);
  });

  it("lets a holder revoke its own certificate but nobody else's", async () => {
    const carol = await user("carol");
    const dave = await user("dave");
    const asCarol = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: ca.server.url, tls: carol }));
    expect(await failure(asCarol.revoke({ serialNumber: dave.serialNumber }))).toEqual({ code: Code.PermissionDenied, reason: "ADMIN_REQUIRED" });
    expect(await failure(asCarol.revoke({ serialNumber: "not-a-serial" }))).toEqual({ code: Code.NotFound, reason: "CERTIFICATE_NOT_FOUND" });
    const own = await asCarol.revoke({ serialNumber: carol.serialNumber.toUpperCase() });
    expect(own.certificate?.state).toBe(Certificate_State.REVOKED);
    expect((await healthOf(dave).check({})).status).toBe(Status.SERVING);
    expect(await failure(asCarol.getTrustBundle({}))).toEqual({ code: Code.Unauthenticated, reason: "CERTIFICATE_REVOKED" });
  });

  it("renews a certificate without interrupting an open stream, and new calls use the new certificate", async () => {
    const erin = await user("erin");
    const keeper = new CertificateKeeper({ material: erin, caUrl: ca.server.url });
    const transport = createRenewingTransport(keeper, { baseUrl: probe.url });
    const health = createClient(Health, transport);
    const watch = health.watch({ service: "probe.Renewal" })[Symbol.asyncIterator]();
    expect((await nextOf(watch)).status).toBe(Status.SERVICE_UNKNOWN);

    const renewed = await keeper.renew();
    const before = describeCertificate(erin.certPem);
    const after = describeCertificate(renewed.certPem);
    expect(after.identity).toBe(before.identity);
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(renewed.keyPem).not.toBe(erin.keyPem);
    const { certificates } = await admin().listCertificates({ identity: "user/erin" });
    expect(certificates.find((c) => c.serialNumber === after.serialNumber)).toMatchObject({
      issuance: Certificate_Issuance.RENEW,
      requester: before.identity,
    });

    // The stream opened before the renewal still delivers.
    probe.health.set("probe.Renewal", Status.SERVING);
    expect((await nextOf(watch)).status).toBe(Status.SERVING);

    // Revoking the old certificate ends only the old stream: new calls carry the new one.
    await admin().revoke({ serialNumber: before.serialNumber });
    expect(await failure(nextOf(watch))).toEqual({ code: Code.Unauthenticated, reason: "CERTIFICATE_REVOKED" });
    expect((await health.check({})).status).toBe(Status.SERVING);
  });

  it("refuses a renewal for another identity, and renews on its own before expiry", async () => {
    const certDir = await mkdtemp(join(tmpdir(), "lclstream-renew-"));
    try {
      const frank = await issueOffline(ca.stateDir, { identity: "user/frank", lifetimeMs: 60_000 });
      const asFrank = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: ca.server.url, tls: frank }));
      const keys = await generateKeyPair("p256");
      const otherCsr = await createCsr(keys, "p256", `spiffe://${caTrustDomain}/user/admin`, [], []);
      expect(await failure(asFrank.renew({ csrPem: otherCsr }))).toEqual({ code: Code.PermissionDenied, reason: "CSR_IDENTITY_MISMATCH" });

      const keeper = new CertificateKeeper({ material: frank, caUrl: ca.server.url, certDir });
      const renewed = new Promise<CertMaterial>((resolve) => keeper.onRenewed(resolve));
      keeper.start();
      const material = await renewed;
      keeper.stop();
      const after = describeCertificate(material.certPem);
      expect(after.identity).toBe(`spiffe://${caTrustDomain}/user/frank`);
      expect(after.notAfter).toBeGreaterThan(describeCertificate(frank.certPem).notAfter);
      expect((await readCertDir(certDir)).certPem).toBe(material.certPem);
      expect((await readFile(join(certDir, "tls.key"), "utf8")).trim()).toBe(material.keyPem.trim());
    } finally {
      await rm(certDir, { recursive: true, force: true });
    }
  });

  it("keeps certificates, tokens and revocations across a restart", async () => {
    const { secret: unused } = await admin().createEnrollmentToken({ identity: "user/grace" });
    const { secret: used } = await admin().createEnrollmentToken({ identity: "user/heidi" });
    const heidi = await enroll({ enrollUrl: ca.server.enrollUrl, token: used });
    const heidiSerial = describeCertificate(heidi.certPem).serialNumber;
    await admin().revoke({ serialNumber: heidiSerial });
    const auditBefore = (await admin().listCertificates({ pageSize: 1000 })).certificates;

    await ca.server.close();
    await ca.restart();

    const auditAfter = (await admin().listCertificates({ pageSize: 1000 })).certificates;
    // The CA's own server certificate is signed anew at each start; everything before is kept.
    expect(auditAfter.length).toBe(auditBefore.length + 1);
    expect(auditAfter.find((c) => c.serialNumber === heidiSerial)?.state).toBe(Certificate_State.REVOKED);
    const crl = new x509.X509Crl((await admin().getRevocationList({})).crlPem);
    expect(crl.entries.map((e) => normalizeSerial(e.serialNumber))).toContain(heidiSerial);
    expect(await failure(enroll({ enrollUrl: ca.server.enrollUrl, token: used }))).toEqual({ code: Code.PermissionDenied, reason: "TOKEN_REFUSED" });
    const grace = await enroll({ enrollUrl: ca.server.enrollUrl, token: unused });
    expect(describeCertificate(grace.certPem).identity).toBe(`spiffe://${caTrustDomain}/user/grace`);
    // Revoked before the restart, still refused after it: the restarted CA hands its CRL to TLS.
    const asHeidi = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: ca.server.url, tls: heidi }));
    expect((await failure(asHeidi.getTrustBundle({}))).reason).toBeUndefined();
  });
});
