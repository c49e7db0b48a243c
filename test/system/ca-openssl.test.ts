/** What the CA issues, as OpenSSL (and so any other TLS stack) sees it. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import { writeCertDir } from "../../services/common/pki.js";
import { describeCertificate } from "../../services/common/renewal.js";
import { enroll } from "../../services/ca/enroll-client.js";
import { caTrustDomain, startTestCa, type TestCa } from "../helpers/ca.js";
import { run } from "../helpers/tools.js";

describe("CA output checked with openssl", () => {
  let ca: TestCa;
  let dir: string;
  const openssl = (...args: string[]) => run("openssl", args);
  const admin = () => createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: ca.server.url, tls: ca.admin }));

  beforeAll(async () => {
    ca = await startTestCa();
    dir = await mkdtemp(join(tmpdir(), "lclstream-openssl-"));
  });
  afterAll(async () => {
    await ca.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("issues a service certificate that verifies against the CA, with its names and purposes", async () => {
    const { secret } = await admin().createEnrollmentToken({ identity: "service/buffer", dnsNames: ["buffer.lcls"], ipAddresses: ["127.0.0.1"] });
    await writeCertDir(
      join(dir, "buffer"),
      await enroll({ enrollUrl: ca.server.enrollUrl, token: secret, dnsNames: ["buffer.lcls"], ipAddresses: ["127.0.0.1"] }),
    );
    const crt = join(dir, "buffer", "tls.crt");
    const verify = await openssl("verify", "-CAfile", join(dir, "buffer", "ca.crt"), crt);
    expect(verify.stdout.trim()).toBe(`${crt}: OK`);
    const text = (await openssl("x509", "-in", crt, "-noout", "-text")).stdout;
    expect(text).toContain(`URI:spiffe://${caTrustDomain}/service/buffer`);
    expect(text).toContain("DNS:buffer.lcls");
    expect(text).toContain("IP Address:127.0.0.1");
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication|TLS Web Client Authentication, TLS Web Server Authentication/);
    expect(text).toContain("CA:FALSE");
    expect((await openssl("verify", "-purpose", "sslserver", "-CAfile", join(dir, "buffer", "ca.crt"), crt)).code).toBe(0);
  });

  it("issues a user certificate for client authentication only", async () => {
    const { secret } = await admin().createEnrollmentToken({ identity: "user/alice" });
    await writeCertDir(join(dir, "alice"), await enroll({ enrollUrl: ca.server.enrollUrl, token: secret }));
    const args = ["-CAfile", join(dir, "alice", "ca.crt"), join(dir, "alice", "tls.crt")];
    expect((await openssl("verify", "-purpose", "sslclient", ...args)).code).toBe(0);
    expect((await openssl("verify", "-purpose", "sslserver", ...args)).code).not.toBe(0);
  });

  it("publishes a CRL that openssl verifies and uses to refuse the revoked certificate", async () => {
    const { secret } = await admin().createEnrollmentToken({ identity: "user/bob" });
    const bob = await enroll({ enrollUrl: ca.server.enrollUrl, token: secret });
    await writeCertDir(join(dir, "bob"), bob);
    const caFile = join(dir, "bob", "ca.crt");
    const crt = join(dir, "bob", "tls.crt");
    const crlFile = join(dir, "crl.pem");

    await writeFile(crlFile, (await admin().getRevocationList({})).crlPem);
    expect((await openssl("verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, crt)).code).toBe(0);

    await admin().revoke({ serialNumber: describeCertificate(bob.certPem).serialNumber, reason: 1 });
    await writeFile(crlFile, (await admin().getRevocationList({})).crlPem);
    const crl = await openssl("crl", "-in", crlFile, "-CAfile", caFile, "-noout", "-text");
    expect(crl.stderr).toContain("verify OK");
    expect(crl.stdout).toContain("Key Compromise");
    const refused = await openssl("verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, crt);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain("certificate revoked");
  });
});
