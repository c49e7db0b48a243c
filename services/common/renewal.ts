/**
 * Client-side certificate renewal: a keeper renews its certificate with the CA
 * before expiry (new key pair, same identity and names), writes the cert
 * directory, and swaps the TLS material of transports built on it. Calls
 * already open keep their connection, which stays valid until the old
 * certificate expires; new calls use the new certificate.
 */
import "reflect-metadata";
import { createClient, type Transport } from "@connectrpc/connect";
import * as x509 from "@peculiar/x509";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { createMeshTransport, type MeshTransportOptions } from "./client.js";
import { createCsr, generateKeyPair, normalizeSerial, privateKeyToPem, writeCertDir, type CertMaterial, type KeyType } from "./pki.js";
import type { Logger } from "./logger.js";

/** Options of {@link CertificateKeeper}. */
export interface CertificateKeeperOptions {
  material: CertMaterial;
  /** The CA's mTLS endpoint. */
  caUrl: string;
  /** Written after each renewal, when set. */
  certDir?: string;
  /** Renew when this fraction of the lifetime has passed; default 2/3. */
  renewAtFraction?: number;
  logger?: Logger;
}

/** Facts about a certificate that renewal needs. */
export function describeCertificate(pem: string) {
  const cert = new x509.X509Certificate(pem);
  const names = (cert.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension | null)?.names.toJSON() ?? [];
  const keyType: KeyType = cert.publicKey.algorithm.name === "Ed25519" ? "ed25519" : "p256";
  return {
    serialNumber: normalizeSerial(cert.serialNumber),
    identity: names.find((n) => n.type === "url")?.value ?? "",
    dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === "ip").map((n) => n.value),
    keyType,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
  };
}

/** Holds a certificate and renews it before it expires. */
export class CertificateKeeper {
  #material: CertMaterial;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<(material: CertMaterial) => void>();
  readonly #options: CertificateKeeperOptions;

  constructor(options: CertificateKeeperOptions) {
    this.#options = options;
    this.#material = options.material;
  }

  get material(): CertMaterial {
    return this.#material;
  }

  /** Calls `listener` with the new material after each renewal. */
  onRenewed(listener: (material: CertMaterial) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Renews now: a new key pair, a CSR for the same names, the CA's Renew. */
  async renew(): Promise<CertMaterial> {
    const current = describeCertificate(this.#material.certPem);
    const keys = await generateKeyPair(current.keyType);
    const csrPem = await createCsr(keys, current.keyType, current.identity, current.dnsNames, current.ipAddresses);
    const ca = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: this.#options.caUrl, tls: this.#material }));
    const res = await ca.renew({ csrPem });
    const material = {
      caPem: res.caCertificatesPem.join("\n") || this.#material.caPem,
      certPem: res.certificateChainPem,
      keyPem: await privateKeyToPem(keys.privateKey),
    };
    if (this.#options.certDir) await writeCertDir(this.#options.certDir, material);
    this.#material = material;
    for (const listener of this.#listeners) listener(material);
    return material;
  }

  /** Renews automatically from now on, retrying a failed renewal sooner as expiry nears. */
  start(): void {
    const { notBefore, notAfter } = describeCertificate(this.#material.certPem);
    const at = notBefore + (notAfter - notBefore) * (this.#options.renewAtFraction ?? 2 / 3);
    this.#schedule(Math.max(0, at - Date.now()));
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    // setTimeout holds at most ~24.8 days; a longer wait is taken in steps.
    const maxDelayMs = 2 ** 31 - 1;
    if (delayMs > maxDelayMs) {
      this.#timer = setTimeout(() => this.#schedule(delayMs - maxDelayMs), maxDelayMs);
      this.#timer.unref();
      return;
    }
    this.#timer = setTimeout(() => {
      this.renew().then(
        () => this.start(),
        (error) => {
          const left = describeCertificate(this.#material.certPem).notAfter - Date.now();
          const retryMs = Math.max(1000, Math.min(60_000, left / 10));
          this.#options.logger?.warn({ err: error, retryMs }, "certificate renewal failed; retrying");
          this.#schedule(retryMs);
        },
      );
    }, delayMs);
    this.#timer.unref();
  }
}

/**
 * A transport whose TLS material follows a keeper: each renewal builds a fresh
 * inner transport for new calls, while calls in flight finish on the old one.
 */
export function createRenewingTransport(keeper: CertificateKeeper, options: Omit<MeshTransportOptions, "tls">): Transport {
  let current = createMeshTransport({ ...options, tls: keeper.material });
  keeper.onRenewed((material) => {
    current = createMeshTransport({ ...options, tls: material });
  });
  return {
    unary: (...args) => current.unary(...args),
    stream: (...args) => current.stream(...args),
  };
}
