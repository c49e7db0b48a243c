/**
 * Clients of lclstream services: a gRPC transport over HTTP/2 with mutual TLS
 * from a cert directory, with the same data-path settings as the servers.
 */
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { readCertDir, type CertMaterial } from "./pki.js";

const MiB = 1024 * 1024;

/** Options of {@link createMeshTransport}. */
export interface MeshTransportOptions {
  /** The server, `https://host:port`. */
  baseUrl: string;
  /** This client's certificate, key and trusted CAs; omit only for the enrollment path. */
  tls: CertMaterial | Pick<CertMaterial, "caPem">;
  /** TLS server name to verify when it differs from the URL's host (for example a service DNS name). */
  serverName?: string;
  /** Largest message sent or accepted, in bytes; default 64 MiB like the servers. */
  maxMessageBytes?: number;
  /** HTTP/2 stream flow-control window, in bytes; default 8 MiB. */
  http2WindowBytes?: number;
}

/** A gRPC transport with mTLS and data-path settings. */
export function createMeshTransport(options: MeshTransportOptions): Transport {
  const tls = options.tls;
  const maxMessageBytes = options.maxMessageBytes ?? 64 * MiB;
  return createGrpcTransport({
    baseUrl: options.baseUrl,
    nodeOptions: {
      ca: tls.caPem,
      ...("certPem" in tls ? { cert: tls.certPem, key: tls.keyPem } : {}),
      servername: options.serverName,
      minVersion: "TLSv1.3",
      settings: { initialWindowSize: options.http2WindowBytes ?? 8 * MiB },
    },
    // Batches are compressed by their serializer if at all.
    acceptCompression: [],
    sendCompression: undefined,
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    pingIntervalMs: 30_000,
  });
}

/** A transport using the cert directory `certDir` (`ca.crt`, `tls.crt`, `tls.key`). */
export async function createMeshTransportFromCertDir(
  baseUrl: string,
  certDir: string,
  options: Omit<MeshTransportOptions, "baseUrl" | "tls"> = {},
): Promise<Transport> {
  return createMeshTransport({ ...options, baseUrl, tls: await readCertDir(certDir) });
}
