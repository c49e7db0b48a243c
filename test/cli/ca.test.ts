/**
 * The CA as an operator and a user drive it from the command line: init,
 * offline issue, serve, tokens, enroll, renew, list, revoke, CRL, and the
 * bad inputs they will try.
 */
import "reflect-metadata";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as x509 from "@peculiar/x509";
import { normalizeSerial } from "../../services/common/pki.js";
import { capture, lclstream, startLclstream, type RunningCommand } from "../helpers/cli.js";

describe("lclstream ca, enroll and renew", () => {
  let dir: string;
  let state: string;
  let serving: RunningCommand;
  let caUrl: string;
  let enrollUrl: string;
  const certDir = (name: string) => join(dir, name);
  const asAdmin = ["--url", "", "--cert-dir", ""];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-ca-cli-"));
    state = join(dir, "state");
    const init = await lclstream(["ca", "init", "--trust-domain", "cli.lclstream", "--state-dir", state]);
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    const issued = await lclstream(["ca", "issue", "--state-dir", state, "--identity", "user/admin", "--out", certDir("admin")]);
    expect(issued.code).toBe(0);
    serving = await startLclstream(["ca", "serve", "--state-dir", state, "--admin", "user/admin"], [/^ca: /, /^enroll: /]);
    caUrl = capture(serving.lines, /^ca: (\S+)/);
    enrollUrl = capture(serving.lines, /^enroll: (\S+)/);
    asAdmin.splice(0, 4, "--url", caUrl, "--cert-dir", certDir("admin"));
  });
  afterAll(async () => {
    await serving?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps the CA key private and never overwrites a CA", async () => {
    expect((await stat(join(state, "ca", "ca.key"))).mode & 0o777).toBe(0o600);
    const again = await lclstream(["ca", "init", "--trust-domain", "cli.lclstream", "--state-dir", state]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("never overwritten");
    const bad = await lclstream(["ca", "init", "--trust-domain", "Not A Domain", "--state-dir", join(dir, "other")]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("not a valid trust domain");
  });

  it("enrolls with a token read from standard input, once", async () => {
    const token = await lclstream(["ca", "token", "create", ...asAdmin, "--identity", "user/alice", "--ttl", "10m"]);
    expect(token.code).toBe(0);
    const secret = token.stdout.trim();
    expect(secret).toMatch(/^lcls1\./);
    // The enrollment endpoint from the environment, as every client command takes its service's.
    const enrolled = await lclstream(["enroll", "--token", "-", "--out", certDir("alice")], {
      input: `${secret}\n`,
      env: { ...process.env, LCLSTREAM_ENROLL_URL: enrollUrl },
    });
    expect(enrolled.stderr).toBe("");
    expect(enrolled.stdout).toContain("spiffe://cli.lclstream/user/alice");
    const cert = new X509Certificate(await readFile(join(certDir("alice"), "tls.crt")));
    expect(cert.subjectAltName).toBe("URI:spiffe://cli.lclstream/user/alice");
    expect((await stat(join(certDir("alice"), "tls.key"))).mode & 0o777).toBe(0o600);

    // --ca, the flag before --url, still works.
    const reused = await lclstream(["enroll", "--ca", enrollUrl, "--token", secret, "--out", certDir("mallory")]);
    expect(reused.code).toBe(1);
    expect(reused.stderr).toContain("unknown, expired or already used");
  });

  it("renews in place: same identity, new serial, listed as a renewal", async () => {
    const before = new X509Certificate(await readFile(join(certDir("alice"), "tls.crt")));
    const renewed = await lclstream(["renew"], { env: { ...process.env, LCLSTREAM_CA_URL: caUrl, LCLSTREAM_CERT_DIR: certDir("alice") } });
    expect(renewed.code).toBe(0);
    const after = new X509Certificate(await readFile(join(certDir("alice"), "tls.crt")));
    expect(after.subjectAltName).toBe(before.subjectAltName);
    expect(after.serialNumber).not.toBe(before.serialNumber);
    const list = await lclstream(["ca", "list", ...asAdmin, "--identity", "user/alice", "--json"]);
    const rows = list.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { serial: string; issuance: string });
    expect(rows.map((r) => r.issuance).sort()).toEqual(["enroll", "renew"]);
    expect(rows.find((r) => r.issuance === "renew")?.serial).toBe(normalizeSerial(after.serialNumber));
  });

  it("revokes, shows it in the list and the CRL, and the revoked certificate is refused with a hint", async () => {
    const serial = new X509Certificate(await readFile(join(certDir("alice"), "tls.crt"))).serialNumber;
    const revoked = await lclstream(["ca", "revoke", ...asAdmin, "--serial", serial, "--reason", "key-compromise"]);
    expect(revoked.code).toBe(0);
    const list = await lclstream(["ca", "list", ...asAdmin, "--state", "revoked"]);
    expect(list.stdout).toContain(normalizeSerial(serial));

    const crlFile = join(dir, "crl.pem");
    const crl = await lclstream(["ca", "crl", ...asAdmin, "--out", crlFile]);
    expect(crl.code).toBe(0);
    const parsed = new x509.X509Crl(await readFile(crlFile, "utf8"));
    expect(parsed.entries.map((e) => normalizeSerial(e.serialNumber))).toContain(normalizeSerial(serial));

    const refused = await lclstream(["health", "--url", caUrl, "--cert-dir", certDir("alice")]);
    expect(refused.code).toBe(1);
    // Told by the client (a connection closed before any answer) or by the CLI (a reset): either way, why and what to do.
    expect(refused.stderr).toMatch(/revoked/);
    expect(refused.stderr).toContain("lclstream renew");
  });

  it("refuses what a non-admin may not do, and bad arguments, with what to do", async () => {
    await lclstream(["ca", "issue", "--state-dir", state, "--identity", "user/bob", "--out", certDir("bob")]);
    const asBob = ["--ca", caUrl, "--cert-dir", certDir("bob")];
    const token = await lclstream(["ca", "token", "create", ...asBob, "--identity", "user/carol"]);
    expect(token.code).toBe(1);
    expect(token.stderr).toContain("is not an admin");
    expect((await lclstream(["ca", "list", ...asBob])).stderr).toContain("is not an admin");

    const ttl = await lclstream(["ca", "token", "create", ...asAdmin, "--identity", "user/carol", "--ttl", "5x"]);
    expect(ttl.code).toBe(1);
    expect(ttl.stderr).toContain("is not a duration");
    const identity = await lclstream(["ca", "token", "create", ...asAdmin, "--identity", "root"]);
    expect(identity.code).toBe(1);
    expect(identity.stderr).toContain("identity");
    const serial = await lclstream(["ca", "revoke", ...asAdmin, "--serial", "abcdef"]);
    expect(serial.stderr).toContain("no certificate with serial abcdef");
    const notToken = await lclstream(["enroll", "--ca", enrollUrl, "--token", "hello", "--out", certDir("x")]);
    expect(notToken.stderr).toContain("not an lclstream enrollment token");
  });

  it("shuts down cleanly on SIGTERM", async () => {
    const other = await startLclstream(["ca", "serve", "--state-dir", state], [/^ca: /]);
    const { code, stderr } = await other.stop("SIGTERM");
    expect(code).toBe(0);
    expect(stderr).toContain("SIGTERM: shutting down");
  });
});
