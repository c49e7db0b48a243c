/**
 * The conformance suite's server under test (docs/testing_servers.md of
 * connectrpc.com/conformance): reads a ServerCompatRequest from stdin, starts
 * the ConformanceService on lclstream's own createServer (TLS 1.3, HTTP/2,
 * no compression, the shared interceptors), and writes a
 * ServerCompatResponse to stdout. Exits on SIGTERM.
 *
 *   node dist/test/conformance/server.js [--direct]
 *
 * --direct serves every implemented method on the hand-framed data path
 * (services/common/direct-grpc.ts), which takes the gRPC protocol's
 * application/grpc(+proto) requests; without it everything goes through
 * connect. Logs (pino) go to stderr, at LCLSTREAM_LOG_LEVEL (default silent).
 */
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { createServer, serve } from "../../services/common/server.js";
import { HTTPVersion } from "./gen/connectrpc/conformance/v1/config_pb.js";
import { ServerCompatRequestSchema, ServerCompatResponseSchema } from "./gen/connectrpc/conformance/v1/server_compat_pb.js";
import { ConformanceService } from "./gen/connectrpc/conformance/v1/service_pb.js";
import { readSizeDelimited, sizeDelimited } from "./protocol.js";
import { conformanceProcedures, conformanceService, implementedMethods } from "./service.js";

const { values: flags } = parseArgs({ options: { direct: { type: "boolean", default: false } } });

async function main() {
  let input: Uint8Array | undefined;
  for await (const message of readSizeDelimited(process.stdin)) {
    input = message;
    break;
  }
  if (!input) throw new Error("no ServerCompatRequest on stdin");
  const req = fromBinary(ServerCompatRequestSchema, input);
  // lclstream serves HTTP/2 over TLS only (the config YAMLs say so; the runner asks for nothing else).
  if (req.httpVersion !== HTTPVersion.HTTP_VERSION_2) throw new Error(`HTTP version ${HTTPVersion[req.httpVersion]} is not served: HTTP/2 only`);
  if (!req.useTls || !req.serverCreds) throw new Error("plaintext is not served: TLS only");
  const certPem = Buffer.from(req.serverCreds.cert).toString();
  const clientCa = req.clientTlsCert.length > 0 ? Buffer.from(req.clientTlsCert).toString() : undefined;

  const server = await createServer({
    name: "conformance",
    host: "127.0.0.1",
    port: 0,
    services: [{ ...serve(ConformanceService, conformanceService), direct: flags.direct ? implementedMethods : [] }],
    // With a client certificate from the runner, it is the only CA trusted
    // (the reference client's self-signed certificate), and it is required.
    // Without, no client certificate is asked for; the CA is then never used.
    tls: { certPem, keyPem: Buffer.from(req.serverCreds.key).toString(), caPem: clientCa ?? certPem },
    requireClientCert: clientCa !== undefined,
    // The runner's peers carry no lclstream (SPIFFE) identity: let them call anonymously.
    trustDomain: "conformance.invalid",
    publicProcedures: conformanceProcedures,
    // The suite's limit (200 KiB) bounds what the server receives only; what it
    // sends keeps the default bound.
    ...(req.messageReceiveLimit > 0 ? { maxMessageBytes: req.messageReceiveLimit, maxSendMessageBytes: 64 * 1024 * 1024 } : {}),
    shutdownGraceMs: 0,
    logger: pino({ name: "conformance", level: process.env.LCLSTREAM_LOG_LEVEL ?? "silent" }, pino.destination(2)),
  });
  process.once("SIGTERM", () => {
    void server.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
  const res = create(ServerCompatResponseSchema, { host: "127.0.0.1", port: server.port, pemCert: req.serverCreds.cert });
  process.stdout.write(sizeDelimited(toBinary(ServerCompatResponseSchema, res)));
}

main().catch((error: unknown) => {
  process.stderr.write(`conformance server: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
