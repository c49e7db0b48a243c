/** Servers and clients for runtime tests: real mTLS on 127.0.0.1, port 0. */
import { createClient, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { createServer, type LclstreamServer, type ServerOptions } from "../../services/common/server.js";
import { createMeshTransport } from "../../services/common/client.js";
import type { CertMaterial } from "../../services/common/pki.js";
import { trustDomain, type TestPki } from "./pki.js";

/** Starts a server with the test PKI's server certificate; close it in afterAll/afterEach. */
export function startServer(pki: TestPki, options: Partial<ServerOptions> & Pick<ServerOptions, "services">): Promise<LclstreamServer> {
  return createServer({ name: "test", tls: pki.server, trustDomain, ...options });
}

/** A Connect-ES gRPC client of `service` on `server` with `tls`. */
export function clientFor<S extends DescService>(service: S, server: LclstreamServer, tls: CertMaterial | Pick<CertMaterial, "caPem">): Client<S> {
  return createClient(service, createMeshTransport({ baseUrl: server.url, tls }));
}
