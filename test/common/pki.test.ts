import { X509Certificate } from "node:crypto";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createCertificateAuthority, issueCertificate, issueMaterial, readCertDir, writeCertDir } from "../../services/common/pki.js";

describe("pki", () => {
  it("issues a leaf with the identity URI SAN, DNS and IP SANs, and client+server EKU, signed by the CA", async () => {
    const ca = await createCertificateAuthority({ trustDomain: "example.org" });
    const leaf = await issueCertificate(ca, {
      identity: "spiffe://example.org/service/buffer",
      dnsNames: ["buffer.example.org"],
      ipAddresses: ["127.0.0.1"],
      lifetimeMs: 60_000,
    });
    const cert = new X509Certificate(leaf.certificatePem);
    const caCert = new X509Certificate(ca.certificatePem);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.subjectAltName).toContain("URI:spiffe://example.org/service/buffer");
    expect(cert.subjectAltName).toContain("DNS:buffer.example.org");
    expect(cert.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(cert.keyUsage).toEqual(expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
    expect(cert.ca).toBe(false);
    expect(caCert.ca).toBe(true);
    expect(cert.serialNumber.toLowerCase()).toBe(leaf.serialNumber);
    const lifetime = Date.parse(cert.validTo) - Date.now();
    expect(lifetime).toBeLessThanOrEqual(61_000);
    expect(lifetime).toBeGreaterThan(0);
    expect(leaf.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("supports Ed25519 for the CA and leaves", async () => {
    const ca = await createCertificateAuthority({ trustDomain: "example.org", keyType: "ed25519" });
    const material = await issueMaterial(ca, { identity: "spiffe://example.org/user/carol", keyType: "ed25519" });
    const cert = new X509Certificate(material.certPem);
    expect(cert.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe("ed25519");
  });

  it("does not verify a leaf against another CA", async () => {
    const ca = await createCertificateAuthority({ trustDomain: "example.org" });
    const other = await createCertificateAuthority({ trustDomain: "example.org" });
    const material = await issueMaterial(ca, { identity: "spiffe://example.org/user/dave" });
    expect(new X509Certificate(material.certPem).verify(new X509Certificate(other.certificatePem).publicKey)).toBe(false);
  });

  it("writes a cert directory whole, and reads a key and certificate only when they belong together", async () => {
    const ca = await createCertificateAuthority({ trustDomain: "example.org" });
    const first = await issueMaterial(ca, { identity: "spiffe://example.org/service/buffer", lifetimeMs: 60_000 });
    const renewed = await issueMaterial(ca, { identity: "spiffe://example.org/service/buffer", lifetimeMs: 60_000 });
    const dir = await mkdtemp(join(tmpdir(), "lclstream-certdir-"));
    try {
      await writeCertDir(dir, first);
      expect((await readdir(dir)).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]); // nothing left aside
      expect((await stat(join(dir, "tls.key"))).mode & 0o777).toBe(0o600);
      expect(await readCertDir(dir)).toEqual(first);
      // Caught between a renewal's key and its certificate: read again until they match.
      await writeFile(join(dir, "tls.key"), renewed.keyPem);
      const reading = readCertDir(dir);
      await new Promise((resolve) => setTimeout(resolve, 120));
      await writeFile(join(dir, "tls.crt"), renewed.certPem);
      expect(await reading).toEqual(renewed);
      // A pair that never matches is an error that says so.
      await writeFile(join(dir, "tls.key"), first.keyPem);
      await expect(readCertDir(dir)).rejects.toThrow(/tls\.key is not the key of tls\.crt/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
