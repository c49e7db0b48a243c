/**
 * How a service takes part in the mesh: it holds a certificate that it renews
 * with the CA before expiry (its server and its clients follow), and it
 * enforces the CA's revocations. Every service's `build(config)` joins once.
 */
import type { Transport } from "@connectrpc/connect";
import { createMeshTransport } from "./client.js";
import type { Logger } from "./logger.js";
import type { CertMaterial } from "./pki.js";
import { parseIdentity, type Identity } from "./identity.js";
import { CertificateKeeper, createRenewingTransport, describeCertificate } from "./renewal.js";
import { followRevocations, type RevocationSet } from "./revocation.js";
import type { LclstreamServer } from "./server.js";

/** Options of {@link joinMesh}. */
export interface JoinMeshOptions {
  /** The service's own certificate, key and trusted CAs. */
  tls: CertMaterial;
  /**
   * The CA's mTLS endpoint. With it, the certificate is renewed and
   * revocations are followed from the CA; without it, the certificate is
   * used as it is and only `revocations` (if given) is enforced.
   */
  caUrl?: string;
  /** Revocations already known in this process (the CA's own, in `lclstream up`). */
  revocations?: RevocationSet;
  /** Where to write renewed material, so a restart picks it up. */
  certDir?: string;
  logger: Logger;
}

/** A service's place in the mesh. */
export interface MeshMembership {
  /** Who this service is, from its certificate's URI SAN. */
  readonly identity: Identity;
  /** The current certificate material. */
  readonly tls: CertMaterial;
  /** What the service's servers refuse; pass to `createServer`. */
  readonly revocations: RevocationSet | undefined;
  /** A client transport to another service that always presents the current certificate. */
  transport(baseUrl: string): Transport;
  /** Keeps `server`'s certificate current across renewals. */
  attach(server: LclstreamServer): void;
  /** Stops renewing and following. */
  leave(): void;
}

/** Joins the mesh; resolves once the revocation list is loaded. */
export async function joinMesh(options: JoinMeshOptions): Promise<MeshMembership> {
  const identity = parseIdentity(describeCertificate(options.tls.certPem).identity);
  if (!identity) throw new Error("the service certificate has no lclstream identity (a spiffe:// URI SAN); issue it with `lclstream ca issue`");
  const stop = new AbortController();
  const keeper = options.caUrl
    ? new CertificateKeeper({ material: options.tls, caUrl: options.caUrl, certDir: options.certDir, logger: options.logger })
    : undefined;
  const transport = (baseUrl: string) => (keeper ? createRenewingTransport(keeper, { baseUrl }) : createMeshTransport({ baseUrl, tls: options.tls }));
  const revocations =
    options.revocations ??
    (options.caUrl
      ? await followRevocations({
          transport: transport(options.caUrl),
          caCertificatePem: options.tls.caPem,
          logger: options.logger,
          signal: stop.signal,
        })
      : undefined);
  keeper?.start();
  return {
    identity,
    get tls() {
      return keeper?.material ?? options.tls;
    },
    revocations,
    transport,
    attach(server) {
      const detach = keeper?.onRenewed((material) => server.updateTls(material));
      if (detach) stop.signal.addEventListener("abort", detach, { once: true });
    },
    leave() {
      keeper?.stop();
      stop.abort();
    },
  };
}
