/**
 * What every mesh service's config has (where it listens, its certificate,
 * the CA to follow, the front proxy, its policy), and how a service joins
 * the mesh with it.
 */
import { z } from "zod";
import { createLogger, type Logger } from "./logger.js";
import { joinMesh, type MeshMembership } from "./mesh.js";
import { readCertDir, type CertMaterial } from "./pki.js";
import type { RevocationSet } from "./revocation.js";
import { createServer, serverSettingsSchema, type LclstreamServer, type ServerOptions, type ServiceRegistration } from "./server.js";

/** Listening, certificate and CA settings. */
export const serviceSettingsShape = {
  /** The service's cert directory; or pass `tls` to build. */
  certDir: z.string().optional(),
  /** The CA's mTLS endpoint: renew the certificate and follow revocations. */
  caUrl: z.string().url().optional(),
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(0),
  metricsPort: serverSettingsSchema.shape.metricsPort,
  metricsHost: serverSettingsSchema.shape.metricsHost,
  /** The front proxy's identity URI, the only peer allowed to forward client identities. */
  proxyIdentity: z.string().optional(),
};

/** Who may do what: a policy file, or the roles inline. */
export const policySettingsShape = {
  policyFile: z.string().optional(),
  admins: z.array(z.string()).default([]),
  /** Identities that may submit jobs and create streams (the data request service). */
  submitters: z.array(z.string()).default([]),
};

/** What `build` may be given besides the config (in-process meshes, tests). */
export interface ServiceDeps {
  tls?: CertMaterial;
  revocations?: RevocationSet;
  logger?: Logger;
}

/** Loads the service's certificate (from `deps.tls` or `certDir`) and joins the mesh. */
export async function joinAsService(
  name: string,
  config: { certDir?: string; caUrl?: string },
  deps: ServiceDeps,
): Promise<{ membership: MeshMembership; logger: Logger }> {
  const logger = deps.logger ?? createLogger(name);
  const tls = deps.tls ?? (config.certDir ? await readCertDir(config.certDir) : undefined);
  if (!tls) throw new Error(`the ${name} service needs a certificate: set certDir (see \`lclstream ca issue\`)`);
  const membership = await joinMesh({ tls, caUrl: config.caUrl, certDir: config.certDir, revocations: deps.revocations, logger });
  return { membership, logger };
}

/** The settings `serveInMesh` takes from a service's config. */
export interface ServingSettings {
  host: string;
  port: number;
  metricsPort?: number;
  metricsHost?: string;
  proxyIdentity?: string;
  maxMessageBytes?: number;
}

/** What else a service's server may serve. */
export interface ServingExtras {
  staticFiles?: { prefix: string; dir: string };
  httpRoutes?: ServerOptions["httpRoutes"];
  allowHttp1?: boolean;
  nativeDataPath?: boolean;
}

/**
 * Starts a service's server with its place in the mesh (certificate, trust
 * domain, revocations), keeping the certificate current across renewals.
 */
export async function serveInMesh(
  name: string,
  config: ServingSettings,
  joined: { membership: MeshMembership; logger: Logger },
  services: ServiceRegistration[],
  extras: ServingExtras = {},
): Promise<LclstreamServer> {
  const { membership, logger } = joined;
  const server = await createServer({
    name,
    tls: membership.tls,
    trustDomain: membership.identity.trustDomain,
    revocations: membership.revocations,
    proxyIdentity: config.proxyIdentity,
    host: config.host,
    port: config.port,
    metricsPort: config.metricsPort,
    metricsHost: config.metricsHost,
    maxMessageBytes: config.maxMessageBytes,
    logger,
    services,
    ...extras,
  });
  membership.attach(server);
  return server;
}
