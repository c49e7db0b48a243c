/**
 * The CA server: an mTLS listener for everything, and an enrollment listener
 * without client certificates that serves only GetTrustBundle and Enroll.
 */
import { z } from "zod";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { createServer, serve, serverSettingsSchema, type LclstreamServer } from "../common/server.js";
import { identityUri } from "../common/identity.js";
import { Policy } from "../common/policy.js";
import { RevocationSet } from "../common/revocation.js";
import { createLogger, type Logger } from "../common/logger.js";
import type { CertMaterial } from "../common/pki.js";
import { CaStore } from "./ca-store.js";
import { caPaths, loadAuthority } from "./authority.js";
import { createCaService } from "./ca-service.js";
import { defaultLifetimes, signLeaf } from "./issuer.js";

const hour = 60 * 60 * 1000;

/** The CA server's configuration. */
export const caConfigSchema = z.strictObject({
  /** Directory holding `ca/` (key, certificate, database). */
  stateDir: z.string().min(1),
  host: z.string().default("127.0.0.1"),
  /** The mTLS listener. */
  port: z.number().int().min(0).max(65535).default(0),
  /** The enrollment listener (no client certificate). */
  enrollPort: z.number().int().min(0).max(65535).default(0),
  /** Policy file naming the admins; or `admins` inline. */
  policyFile: z.string().optional(),
  admins: z.array(z.string()).default([]),
  proxyIdentity: z.string().optional(),
  /** Names for the CA's own server certificate. */
  dnsNames: z.array(z.string()).default(["localhost"]),
  ipAddresses: z.array(z.string()).default(["127.0.0.1"]),
  userLifetimeMs: z.number().int().positive().default(defaultLifetimes.userMs),
  serviceLifetimeMs: z.number().int().positive().default(defaultLifetimes.serviceMs),
  metricsPort: serverSettingsSchema.shape.metricsPort,
  metricsHost: serverSettingsSchema.shape.metricsHost,
});

export type CaConfig = z.input<typeof caConfigSchema>;

/** A running CA. */
export interface CaServer {
  /** The mTLS endpoint. */
  url: string;
  /** The enrollment endpoint. */
  enrollUrl: string;
  caCertificatePem: string;
  trustDomain: string;
  store: CaStore;
  /** Revoked serials, kept current from the store (for servers in the same process). */
  revocations: RevocationSet;
  /** The Prometheus endpoint, when a metrics port was given. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

/** Starts the CA from its state directory. */
export async function build(input: CaConfig, logger: Logger = createLogger("ca")): Promise<CaServer> {
  const config = caConfigSchema.parse(input);
  const authority = await loadAuthority(config.stateDir);
  const trustDomain = authority.trustDomain;
  const store = new CaStore(caPaths(config.stateDir).database);
  const policy = Policy.fromConfig(config, trustDomain);
  const lifetimes = { userMs: config.userLifetimeMs, serviceMs: config.serviceLifetimeMs };
  const ca = createCaService({ store, authority, policy, lifetimes });

  // Revocations the CA's own listeners enforce, straight from its store.
  const revocations = new RevocationSet();
  for (const r of store.revocationsAfter(0)) revocations.add(r.serialNumber);
  revocations.setCrl((await ca.currentCrl()).pem);
  const onRevoked = (r: { serialNumber: string }) => {
    revocations.add(r.serialNumber);
    void ca.currentCrl().then((c) => revocations.setCrl(c.pem));
  };
  store.on("revoked", onRevoked);

  // The CA's own server certificate, signed at start and again before it expires.
  const ownIdentity = identityUri(trustDomain, "service", "ca");
  const signOwn = async (): Promise<CertMaterial> => {
    const { record, privateKeyPem } = await signLeaf(
      authority,
      lifetimes,
      { identity: ownIdentity, dnsNames: config.dnsNames, ipAddresses: config.ipAddresses, issuance: "offline", requester: ownIdentity },
      Date.now(),
    );
    store.insertCertificate(record);
    return { caPem: authority.certificatePem, certPem: record.certificatePem, keyPem: privateKeyPem! };
  };
  const tls = await signOwn();

  const common = { trustDomain, tls, host: config.host, proxyIdentity: config.proxyIdentity, logger };
  let main: LclstreamServer | undefined;
  let enroll: LclstreamServer | undefined;
  try {
    main = await createServer({
      ...common,
      name: "ca",
      port: config.port,
      metricsPort: config.metricsPort,
      metricsHost: config.metricsHost,
      revocations,
      services: [serve(CertificateAuthorityService, ca.service)],
    });
    enroll = await createServer({
      ...common,
      name: "ca-enroll",
      port: config.enrollPort,
      requireClientCert: false,
      // Anyone may connect here, and an enrollment is two calls: idle connections go soon.
      idleConnectionTimeoutMs: 60_000,
      publicProcedures: [
        "/lclstream.ca.v1.CertificateAuthorityService/GetTrustBundle",
        "/lclstream.ca.v1.CertificateAuthorityService/Enroll",
        // A newcomer's first look (grpcurl list/describe) is here, before they hold a certificate.
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      ],
      services: [serve(CertificateAuthorityService, { getTrustBundle: ca.service.getTrustBundle, enroll: ca.service.enroll })],
    });
  } catch (error) {
    await main?.close();
    store.off("revoked", onRevoked);
    store.close();
    throw error;
  }
  const servers = [main, enroll];

  const renewEvery = Math.min(config.serviceLifetimeMs * (2 / 3), 24 * hour);
  const renewal = setInterval(() => {
    signOwn().then(
      (material) => servers.forEach((s) => s.updateTls(material)),
      (error) => logger.error({ err: error }, "renewing the CA's own server certificate failed"),
    );
  }, renewEvery);
  renewal.unref();

  return {
    url: main.url,
    enrollUrl: enroll.url,
    caCertificatePem: authority.certificatePem,
    trustDomain,
    store,
    revocations,
    metricsUrl: main.metricsUrl,
    async close() {
      clearInterval(renewal);
      await Promise.all(servers.map((s) => s.close()));
      store.off("revoked", onRevoked);
      store.close();
    },
  };
}
