/** Servers and clients for runtime tests: real mTLS on 127.0.0.1, port 0. */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
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

/**
 * Runs `script`, a Node HTTP/2 server given the test server's certificate and
 * key as CERT and KEY, in a process of its own; its first line of output is
 * its port, and `lines` reads what it prints after. Kill `child` when done.
 */
export async function startChildServer(script: string, pki: TestPki): Promise<{ child: ChildProcess; port: number; lines: AsyncIterator<string> }> {
  const child = spawn(process.execPath, ["-e", script], {
    env: { ...process.env, CERT: pki.server.certPem, KEY: pki.server.keyPem },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, port: Number((await lines.next()).value), lines };
}

/** Where a native call (the module's `open`) goes to call `path` as a gRPC client of 127.0.0.1:`port`. */
export function nativeCallTarget(port: number, path: string) {
  return {
    host: "127.0.0.1",
    port,
    servername: "localhost",
    authority: `127.0.0.1:${port}`,
    path,
    headers: [
      ["content-type", "application/grpc"],
      ["te", "trailers"],
    ] as [string, string][],
  };
}
