import "reflect-metadata";
import { webcrypto, X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import * as x509 from "@peculiar/x509";
import type * as grpc from "@grpc/grpc-js";
import { CertificateAuthorityService, Certificate_Issuance, Certificate_State } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import { createCsr, generateKeyPair, normalizeSerial, type CertMaterial } from "../../services/common/pki.js";
import { enroll } from "../../services/ca/enroll-client.js";
import { createGrpcJsClient, grpcJsCredentials } from "../helpers/grpc-js.js";
import { caTrustDomain, startTestCa, type TestCa } from "../helpers/ca.js";
import { failure } from "../helpers/errors.js";

describe("enrollment", () => {
  let ca: TestCa;
  const ca_ = (tls: CertMaterial | Pick<CertMaterial, "caPem">, url = ca.server.url) =>
    createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: url, tls }));
  const admin = () => ca_(ca.admin);
  const anonymous = () => ca_({ caPem: ca.server.caCertificatePem }, ca.server.enrollUrl);
  const newToken = async (identity: string, extra: { ttl?: { seconds: bigint }; dnsNames?: string[]; ipAddresses?: string[] } = {}) =>
    (await admin().createEnrollmentToken({ identity, ...extra })).secret;
  const auditSize = async () => (await admin().listCertificates({ pageSize: 1000 })).certificates.length;

  beforeAll(async () => {
    ca = await startTestCa();
  });
  afterAll(() => ca.cleanup());

  it("serves the trust bundle to anyone on the enrollment listener", async () => {
    const bundle = await anonymous().getTrustBundle({});
    expect(bundle.trustDomain).toBe(caTrustDomain);
    expect(bundle.caCertificatesPem).toEqual([ca.server.caCertificatePem]);
  });

  it("answers health and reflection on the enrollment listener without a client certificate", async () => {
    const transport = createMeshTransport({ baseUrl: ca.server.enrollUrl, tls: { caPem: ca.server.caCertificatePem } });
    expect((await createClient(Health, transport).check({ service: "" })).status).toBe(1);
    const reflection = createClient(ServerReflection, transport);
    const answers = [];
    for await (const answer of reflection.serverReflectionInfo(
      (async function* () {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
      })(),
    ))
      answers.push(answer);
    const listed = answers[0]?.messageResponse.case === "listServicesResponse" ? answers[0].messageResponse.value.service.map((s) => s.name) : [];
    expect(listed).toContain("lclstream.ca.v1.CertificateAuthorityService");
    // Still nothing else: a CA call beyond enrollment needs a certificate.
    expect((await failure(anonymous().listCertificates({}))).code).toBe(Code.Unauthenticated);
  });

  it("enrolls with a token: the certificate carries the token's identity, is short-lived, and is in the audit log", async () => {
    const token = await newToken("user/alice");
    expect(token).toMatch(/^lcls1\./);
    const material = await enroll({ enrollUrl: ca.server.enrollUrl, token });
    const cert = new X509Certificate(material.certPem);
    expect(cert.subjectAltName).toBe(`URI:spiffe://${caTrustDomain}/user/alice`);
    expect(cert.verify(new X509Certificate(ca.server.caCertificatePem).publicKey)).toBe(true);
    const lifetimeH = (Date.parse(cert.validTo) - Date.now()) / 3_600_000;
    expect(lifetimeH).toBeGreaterThan(23);
    expect(lifetimeH).toBeLessThanOrEqual(24);

    const { certificates } = await admin().listCertificates({ identity: "user/alice" });
    expect(certificates).toHaveLength(1);
    expect(certificates[0]).toMatchObject({
      serialNumber: normalizeSerial(cert.serialNumber),
      issuance: Certificate_Issuance.ENROLL,
      requester: `spiffe://${caTrustDomain}/user/admin`,
      state: Certificate_State.ACTIVE,
    });

    // The enrolled certificate works over mTLS, with Connect-ES and with grpc-js.
    const whoami = await failure(ca_(material).listCertificates({}));
    expect(whoami).toMatchObject({ code: Code.PermissionDenied, reason: "ADMIN_REQUIRED" });
    expect(whoami.message).toContain("user/alice");
    const client = createGrpcJsClient(Health, new URL(ca.server.url).host, grpcJsCredentials(material));
    const status = await new Promise<any>((resolve, reject) =>
      (client as any).check({ service: "" }, (e: grpc.ServiceError | null, r: unknown) => (e ? reject(e) : resolve(r))),
    );
    client.close();
    expect(status.status).toBe(1);
  });

  it("issues a service certificate with the DNS and IP names the token grants, and a 7-day lifetime", async () => {
    const token = await newToken("service/buffer", { dnsNames: ["buffer.lcls"], ipAddresses: ["127.0.0.1"] });
    const material = await enroll({ enrollUrl: ca.server.enrollUrl, token, dnsNames: ["buffer.lcls"], ipAddresses: ["127.0.0.1"] });
    const cert = new X509Certificate(material.certPem);
    expect(cert.subjectAltName).toContain("DNS:buffer.lcls");
    expect(cert.subjectAltName).toContain("IP Address:127.0.0.1");
    expect((Date.parse(cert.validTo) - Date.now()) / 86_400_000).toBeGreaterThan(6.9);
  });

  it("enrolls an Ed25519 key", async () => {
    const material = await enroll({ enrollUrl: ca.server.enrollUrl, token: await newToken("user/eddie"), keyType: "ed25519" });
    expect(new X509Certificate(material.certPem).publicKey.asymmetricKeyType).toBe("ed25519");
  });

  it("refuses token creation by a non-admin", async () => {
    const alice = await enroll({ enrollUrl: ca.server.enrollUrl, token: await newToken("user/alice2") });
    expect(await failure(ca_(alice).createEnrollmentToken({ identity: "user/mallory" }))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "ADMIN_REQUIRED",
    });
  });

  it("refuses bad token requests with field violations", async () => {
    for (const request of [{ identity: "alice" }, { identity: "user/x", ttl: { seconds: 8n * 86400n } }, { identity: "user/x", dnsNames: ["a.b"] }]) {
      expect(await failure(admin().createEnrollmentToken(request))).toMatchObject({ code: Code.InvalidArgument });
    }
  });

  describe("refusals issue nothing", () => {
    async function csrFor(identity: string | undefined, options: { ca?: boolean } = {}) {
      const keys = await generateKeyPair();
      if (!options.ca) return createCsr(keys, "p256", identity);
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: "CN=evil",
        keys,
        signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.SubjectAlternativeNameExtension([{ type: "url", value: identity! }])],
      });
      return csr.toString("pem");
    }

    it("a reused token", async () => {
      const token = await newToken("user/carol");
      await enroll({ enrollUrl: ca.server.enrollUrl, token });
      const before = await auditSize();
      expect(await failure(anonymous().enroll({ token, csrPem: await csrFor(undefined) }))).toMatchObject({
        code: Code.PermissionDenied,
        reason: "TOKEN_REFUSED",
      });
      expect(await auditSize()).toBe(before);
    });

    it("an expired token", async () => {
      const token = await newToken("user/dave", { ttl: { seconds: 1n } });
      await new Promise((r) => setTimeout(r, 1100));
      const before = await auditSize();
      expect(await failure(anonymous().enroll({ token, csrPem: await csrFor(undefined) }))).toMatchObject({
        code: Code.PermissionDenied,
        reason: "TOKEN_REFUSED",
      });
      expect(await auditSize()).toBe(before);
    });

    it("a CSR for another identity, then the same token still works for the right one", async () => {
      const token = await newToken("user/erin");
      const before = await auditSize();
      expect(await failure(anonymous().enroll({ token, csrPem: await csrFor(`spiffe://${caTrustDomain}/user/admin`) }))).toMatchObject({
        code: Code.PermissionDenied,
        reason: "CSR_IDENTITY_MISMATCH",
      });
      expect(await auditSize()).toBe(before);
      const material = await enroll({ enrollUrl: ca.server.enrollUrl, token, identity: "user/erin" });
      expect(new X509Certificate(material.certPem).subjectAltName).toContain("user/erin");
    });

    it("a CSR asking for CA:TRUE", async () => {
      const token = await newToken("user/frank");
      const before = await auditSize();
      expect(await failure(anonymous().enroll({ token, csrPem: await csrFor(`spiffe://${caTrustDomain}/user/frank`, { ca: true }) }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CSR_CA_REQUESTED",
      });
      expect(await auditSize()).toBe(before);
    });

    it("a tampered CSR", async () => {
      const token = await newToken("user/grace");
      const pem = await csrFor(undefined);
      // Change one byte inside the signed request info (the subject's common name).
      const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
      const at = der.indexOf(Buffer.from("lclstream enrollee"));
      der[at] = der[at]! ^ 0x01;
      const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
      const before = await auditSize();
      expect(await failure(anonymous().enroll({ token, csrPem: tampered }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CSR_BAD_SIGNATURE",
      });
      expect(
        await failure(anonymous().enroll({ token, csrPem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----" })),
      ).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CSR_MALFORMED",
      });
      expect(await auditSize()).toBe(before);
    });

    it("an RSA key, and names the token does not grant", async () => {
      const token = await newToken("service/producer", { dnsNames: ["producer.lcls"] });
      const rsa = (await webcrypto.subtle.generateKey(
        { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
        true,
        ["sign", "verify"],
      )) as CryptoKeyPair;
      const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: "CN=x",
        keys: rsa,
        signingAlgorithm: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as Algorithm,
      });
      expect(await failure(anonymous().enroll({ token, csrPem: rsaCsr.toString("pem") }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CSR_UNSUPPORTED_KEY",
      });
      const keys = await generateKeyPair();
      const greedy = await createCsr(keys, "p256", undefined, ["producer.lcls", "ca.lcls"]);
      expect(await failure(anonymous().enroll({ token, csrPem: greedy }))).toMatchObject({
        code: Code.PermissionDenied,
        reason: "CSR_NAME_NOT_ALLOWED",
      });
    });

    /** A P-256 CSR for `identity` with any extensions besides its SAN. */
    async function csrWith(identity: string, extensions: x509.Extension[], names: x509.JsonGeneralName[] = []) {
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: "CN=greedy",
        keys: await generateKeyPair(),
        signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${caTrustDomain}/${identity}` }, ...names]), ...extensions],
      });
      return csr.toString("pem");
    }

    it("a CSR swollen by a huge extension, and one asking for too many names; the token still works after", async () => {
      const token = await newToken("user/heidi");
      const before = await auditSize();
      const huge = new x509.Extension("1.3.6.1.4.1.99999.1", false, new Uint8Array(20_000).fill(0x41));
      expect(await failure(anonymous().enroll({ token, csrPem: await csrWith("user/heidi", [huge]) }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CSR_TOO_LARGE",
      });
      const many = Array.from({ length: 40 }, (_, i) => ({ type: "dns" as const, value: `n${i}.example.org` }));
      expect(await failure(anonymous().enroll({ token, csrPem: await csrWith("user/heidi", [], many) }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CSR_TOO_MANY_NAMES",
      });
      expect(await auditSize()).toBe(before);
      await enroll({ enrollUrl: ca.server.enrollUrl, token, identity: "user/heidi" });
      expect(await auditSize()).toBe(before + 1);
    });

    it("a CSR asking for certificate signing, code signing and an extension of its own gets none of them", async () => {
      const token = await newToken("user/ivan");
      const csrPem = await csrWith("user/ivan", [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning, x509.ExtendedKeyUsage.serverAuth]),
        new x509.Extension("1.3.6.1.4.1.99999.2", false, new Uint8Array([1, 2, 3])),
      ]);
      const { certificateChainPem } = await anonymous().enroll({ token, csrPem });
      const cert = new x509.X509Certificate(certificateChainPem);
      const usages = cert.getExtension(x509.KeyUsagesExtension)!.usages;
      expect(usages & x509.KeyUsageFlags.keyCertSign).toBe(0);
      expect(usages & x509.KeyUsageFlags.cRLSign).toBe(0);
      // A user certificate is a TLS client only: no server auth, no code signing, whatever it asked for.
      expect(cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
      expect(cert.getExtension("1.3.6.1.4.1.99999.2")).toBeNull();
      expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false).toBe(false);
    });

    it("a token that is not one", async () => {
      expect(await failure(anonymous().enroll({ token: "hunter2", csrPem: "x" }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "TOKEN_MALFORMED",
      });
    });
  });

  it("serves only GetTrustBundle and Enroll on the enrollment listener", async () => {
    expect(await failure(ca_(ca.admin, ca.server.enrollUrl).listCertificates({}))).toMatchObject({ code: Code.Unimplemented });
    expect(await failure(ca_(ca.admin, ca.server.enrollUrl).revoke({ serialNumber: "01" }))).toMatchObject({ code: Code.Unimplemented });
  });

  it("pages through the audit log", async () => {
    const all = (await admin().listCertificates({ pageSize: 1000 })).certificates.map((c) => c.serialNumber);
    const paged: string[] = [];
    let pageToken = "";
    do {
      const page = await admin().listCertificates({ pageSize: 2, pageToken });
      paged.push(...page.certificates.map((c) => c.serialNumber));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(paged).toEqual(all);
    expect(all.length).toBeGreaterThan(4);
  });
});
