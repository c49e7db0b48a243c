/**
 * `lclstream ca …`, `lclstream enroll` and `lclstream renew`: running the
 * certificate authority and getting certificates from it.
 */
import "reflect-metadata";
import { writeFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import * as x509 from "@peculiar/x509";
import { createClient } from "@connectrpc/connect";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { CertificateAuthorityService, Certificate_Issuance, Certificate_State, RevocationReason } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { caFingerprint, caPaths, initAuthority } from "../ca/authority.js";
import { issueOffline } from "../ca/offline.js";
import { enroll } from "../ca/enroll-client.js";
import { createMeshTransportFromCertDir } from "../common/client.js";
import { readCertDir, writeCertDir, type KeyType } from "../common/pki.js";
import { CertificateKeeper, describeCertificate } from "../common/renewal.js";
import { collect, defaultStateDir, enrollEndpoint, meshEndpoint, meshOptions, parseDuration, parsePort, readStdin, runUntilSignal } from "./options.js";

const keyTypeOption = () => new Option("--key-type <type>", "key algorithm").choices(["p256", "ed25519"]).default("p256");
const stateDirOption = () => new Option("--state-dir <dir>", "state directory holding ca/").default(defaultStateDir());
/** The flag the CA commands took before --url, kept so that scripts written for it run on. */
const legacyCaOption = () => new Option("--ca <url>", "the same as --url").hideHelp();

/** --url, --cert-dir and --state-dir, as every client command takes them, and --ca as --url. */
const caOptions = (c: Command) => meshOptions(c, "ca", "the CA's mTLS endpoint").addOption(legacyCaOption());

interface CaConnection {
  url?: string;
  ca?: string;
  certDir?: string;
  stateDir?: string;
}

/** The CA a command calls, found as every client command finds its service (see meshEndpoint). */
function caEndpoint(o: CaConnection) {
  return meshEndpoint("ca", { ...o, url: o.url ?? o.ca });
}

async function caClient(o: CaConnection) {
  const { url, certDir } = caEndpoint(o);
  return createClient(CertificateAuthorityService, await createMeshTransportFromCertDir(url, certDir));
}

function printCertificate(pem: string, dir: string) {
  const cert = describeCertificate(pem);
  console.log(`wrote ${dir}: ${cert.identity}, serial ${cert.serialNumber}, valid until ${new Date(cert.notAfter).toISOString()}`);
}

export function registerCaCommands(program: Command): void {
  const ca = program.command("ca").description("run the certificate authority and manage what it issues");

  ca.command("init")
    .description("create a root CA (key mode 0600) in the state directory; never overwrites one")
    .requiredOption("--trust-domain <domain>", "the mesh's trust domain, e.g. lcls.example.org")
    .addOption(stateDirOption())
    .addOption(keyTypeOption())
    .action(async (o: { trustDomain: string; stateDir: string; keyType: KeyType }) => {
      const authority = await initAuthority(o.stateDir, o.trustDomain, o.keyType);
      const paths = caPaths(o.stateDir);
      console.log(`created CA for ${authority.trustDomain} in ${paths.dir}`);
      console.log(`certificate: ${paths.certificate}`);
      console.log(`fingerprint (sha256): ${caFingerprint(authority)}`);
    });

  ca.command("issue")
    .description("issue a certificate with the CA key on disk (the first admin, the mesh's services); recorded in the audit log")
    .requiredOption("--identity <id>", "user/NAME, service/NAME or a spiffe:// URI")
    .requiredOption("--out <dir>", "cert directory to write (ca.crt, tls.crt, tls.key)")
    .option("--dns <name>", "a DNS name for a service certificate (repeatable)", collect, [])
    .option("--ip <address>", "an IP address for a service certificate (repeatable)", collect, [])
    .option("--lifetime <duration>", "validity, e.g. 24h or 7d (default: 24h users, 7d services)", parseDuration)
    .addOption(stateDirOption())
    .addOption(keyTypeOption())
    .action(async (o: { identity: string; out: string; dns: string[]; ip: string[]; lifetime?: number; stateDir: string; keyType: KeyType }) => {
      const issued = await issueOffline(o.stateDir, { identity: o.identity, dnsNames: o.dns, ipAddresses: o.ip, lifetimeMs: o.lifetime, keyType: o.keyType });
      await writeCertDir(o.out, issued);
      printCertificate(issued.certPem, o.out);
    });

  ca.command("serve")
    .description("run the CA: an mTLS endpoint, and an enrollment endpoint that needs no client certificate")
    .addOption(stateDirOption())
    .option("--host <address>", "address to bind", "127.0.0.1")
    .option("--port <port>", "mTLS port (0 picks one)", parsePort, 0)
    .option("--enroll-port <port>", "enrollment port (0 picks one)", parsePort, 0)
    .option("--admin <id>", "an admin identity (repeatable); or use --policy", collect, [])
    .option("--policy <file>", "policy file (YAML) naming the admins")
    .option("--proxy-identity <uri>", "the front proxy's identity, allowed to forward client identities")
    .option("--dns <name>", "a DNS name for the CA's own certificate (repeatable)", collect, [])
    .option("--ip <address>", "an IP address for the CA's own certificate (repeatable)", collect, [])
    .option("--user-lifetime <duration>", "validity of user certificates", parseDuration)
    .option("--service-lifetime <duration>", "validity of service certificates", parseDuration)
    .option("--metrics-port <port>", "serve Prometheus metrics on this port", parsePort)
    .option("--metrics-host <address>", "address the metrics port binds (default 127.0.0.1)")
    .option("--log-file <file>", "append the JSON logs to this file instead of stderr")
    .action(async (o) => {
      const { build } = await import("../ca/server.js"); // the server's code, only to serve
      const server = await build({
        stateDir: o.stateDir,
        host: o.host,
        port: o.port,
        enrollPort: o.enrollPort,
        admins: o.admin,
        policyFile: o.policy,
        proxyIdentity: o.proxyIdentity,
        dnsNames: o.dns.length ? o.dns : undefined,
        ipAddresses: o.ip.length ? o.ip : o.host === "127.0.0.1" ? undefined : [o.host],
        userLifetimeMs: o.userLifetime,
        serviceLifetimeMs: o.serviceLifetime,
        metricsPort: o.metricsPort,
        metricsHost: o.metricsHost,
      });
      const stopped = runUntilSignal(() => server.close());
      console.log(`ca: ${server.url} (mTLS)`);
      console.log(`enroll: ${server.enrollUrl} (no client certificate; GetTrustBundle and Enroll only)`);
      if (server.metricsUrl) console.log(`ca metrics: ${server.metricsUrl}`);
      await stopped;
    });

  const token = ca.command("token").description("enrollment tokens");
  caOptions(token.command("create").description("create a one-time enrollment token for one identity (admin); the secret is shown once"))
    .requiredOption("--identity <id>", "who the token enrolls: user/NAME or service/NAME")
    .addOption(new Option("--ttl <duration>", "how long the token stays usable, e.g. 30m or 1h").argParser(parseDuration).default(3_600_000, "1h"))
    .option("--dns <name>", "a DNS name a service may put in its certificate (repeatable)", collect, [])
    .option("--ip <address>", "an IP address a service may put in its certificate (repeatable)", collect, [])
    .action(async (o: CaConnection & { identity: string; ttl: number; dns: string[]; ip: string[] }) => {
      const client = await caClient(o);
      const seconds = BigInt(Math.ceil(o.ttl / 1000));
      const res = await client.createEnrollmentToken({ identity: o.identity, ttl: { seconds }, dnsNames: o.dns, ipAddresses: o.ip });
      console.error(`token for ${res.token?.identity}, usable once until ${new Date(timestampMs(res.token!.expireTime!)).toISOString()}:`);
      console.log(res.secret);
    });

  caOptions(ca.command("revoke").description("revoke a certificate (admin, or the holder for its own); every service drops it within seconds"))
    .requiredOption("--serial <hex>", "serial number, as `lclstream ca list` or `openssl x509 -serial` shows it")
    .addOption(
      new Option("--reason <reason>", "RFC 5280 reason")
        .choices(["unspecified", "key-compromise", "affiliation-changed", "superseded", "cessation-of-operation", "privilege-withdrawn"])
        .default("unspecified"),
    )
    .action(async (o: CaConnection & { serial: string; reason: string }) => {
      const reason = RevocationReason[o.reason.toUpperCase().replaceAll("-", "_") as keyof typeof RevocationReason];
      const res = await (await caClient(o)).revoke({ serialNumber: o.serial, reason });
      console.log(`revoked ${res.certificate?.serialNumber} (${res.certificate?.identity})`);
    });

  caOptions(ca.command("crl").description("fetch the CA's signed CRL (PEM), verified against your ca.crt; for proxies and `openssl verify -crl_check`"))
    .option("--out <file>", "write it here instead of standard output")
    .action(async (o: CaConnection & { out?: string }) => {
      const { url, certDir } = caEndpoint(o);
      const res = await (await caClient(o)).getRevocationList({});
      const crl = new x509.X509Crl(res.crlPem);
      const { caPem } = await readCertDir(certDir);
      if (!(await crl.verify({ publicKey: new x509.X509Certificate(caPem) }))) {
        throw new Error(`the CRL from ${url} is not signed by the CA in ${certDir}/ca.crt; check the URL`);
      }
      if (o.out) {
        await writeFile(o.out, res.crlPem);
        console.error(`wrote ${o.out}: CRL number ${res.crlNumber}, ${crl.entries.length} revoked`);
      } else {
        process.stdout.write(res.crlPem);
      }
    });

  caOptions(ca.command("list").description("list issued certificates, the CA's audit log (admin)"))
    .option("--identity <id>", "only this identity")
    .addOption(new Option("--state <state>", "only this state").choices(["active", "expired", "revoked"]))
    .option("--json", "one JSON object per line")
    .action(async (o: CaConnection & { identity?: string; state?: string; json?: boolean }) => {
      const client = await caClient(o);
      const state = o.state ? Certificate_State[o.state.toUpperCase() as keyof typeof Certificate_State] : Certificate_State.UNSPECIFIED;
      if (!o.json) console.log(["SERIAL", "IDENTITY", "STATE", "ISSUANCE", "REQUESTER", "NOT AFTER"].join("\t"));
      let pageToken = "";
      do {
        const page = await client.listCertificates({ identity: o.identity ?? "", state, pageToken, pageSize: 500 });
        for (const c of page.certificates) {
          const row = {
            serial: c.serialNumber,
            identity: c.identity,
            state: Certificate_State[c.state].toLowerCase(),
            issuance: Certificate_Issuance[c.issuance].toLowerCase(),
            requester: c.requester,
            notAfter: new Date(timestampMs(c.notAfterTime as Timestamp)).toISOString(),
            ...(c.revocation ? { revoker: c.revocation.revoker } : {}),
          };
          console.log(o.json ? JSON.stringify(row) : [row.serial, row.identity, row.state, row.issuance, row.requester, row.notAfter].join("\t"));
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
    });

  program
    .command("enroll")
    .description("get a certificate with a one-time token: pins the CA by the token's fingerprint, makes a key pair, writes a cert directory")
    .option("--url <url>", "the CA's enrollment endpoint, https://HOST:PORT (default: $LCLSTREAM_ENROLL_URL, or the running `lclstream up`'s)")
    .option("--state-dir <dir>", "the `lclstream up` state directory, whose endpoints.json names the services", defaultStateDir())
    .addOption(legacyCaOption())
    .requiredOption("--token <token>", "the token from `lclstream ca token create` (or - to read it from standard input)")
    .requiredOption("--out <dir>", "cert directory to write (ca.crt, tls.crt, tls.key)")
    .option("--dns <name>", "a DNS name the token grants (repeatable)", collect, [])
    .option("--ip <address>", "an IP address the token grants (repeatable)", collect, [])
    .addOption(keyTypeOption())
    .action(async (o: { url?: string; ca?: string; stateDir: string; token: string; out: string; dns: string[]; ip: string[]; keyType: KeyType }) => {
      const token = o.token === "-" ? (await readStdin()).trim() : o.token;
      const enrollUrl = enrollEndpoint(o.url ?? o.ca, o.stateDir);
      const material = await enroll({ enrollUrl, token, keyType: o.keyType, dnsNames: o.dns, ipAddresses: o.ip });
      await writeCertDir(o.out, material);
      printCertificate(material.certPem, o.out);
    });

  caOptions(program.command("renew").description("renew the certificate in a cert directory now (new key pair, same identity and names)")).action(
    async (o: CaConnection) => {
      const { url, certDir } = caEndpoint(o);
      const keeper = new CertificateKeeper({ material: await readCertDir(certDir), caUrl: url, certDir });
      const material = await keeper.renew();
      printCertificate(material.certPem, certDir);
    },
  );
}
