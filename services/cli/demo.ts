/**
 * `lclstream demo`: what runs today, end to end on loopback. A fresh dev PKI,
 * one mTLS server with health and reflection, and a client that proves who it
 * is and what the server offers.
 */
import type { Command } from "commander";
import { createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { createCertificateAuthority, issueMaterial } from "../common/pki.js";
import { identityUri } from "../common/identity.js";
import { createServer } from "../common/server.js";
import { createMeshTransport } from "../common/client.js";
import { createLogger } from "../common/logger.js";

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("start an mTLS server on loopback with a fresh dev PKI and talk to it")
    .action(async () => {
      const trustDomain = "demo.lclstream";
      const started = performance.now();
      const ca = await createCertificateAuthority({ trustDomain });
      const serverTls = await issueMaterial(ca, { identity: identityUri(trustDomain, "service", "demo"), ipAddresses: ["127.0.0.1"] });
      const userTls = await issueMaterial(ca, { identity: identityUri(trustDomain, "user", "demo") });
      console.log(`dev PKI: CA and two certificates in ${(performance.now() - started).toFixed(0)} ms`);

      const server = await createServer({ name: "demo", services: [], tls: serverTls, trustDomain, logger: createLogger("demo", "warn") });
      try {
        console.log(`server: ${server.url} (TLS 1.3, client certificate required)`);
        const transport = createMeshTransport({ baseUrl: server.url, tls: userTls });
        const { status } = await createClient(Health, transport).check({ service: "" });
        console.log(`health: ${Status[status]}, as ${identityUri(trustDomain, "user", "demo")}`);
        const reflection = createClient(ServerReflection, transport);
        async function* ask() {
          yield { messageRequest: { case: "listServices" as const, value: "" } };
        }
        for await (const answer of reflection.serverReflectionInfo(ask())) {
          if (answer.messageResponse.case === "listServicesResponse") {
            console.log(`services: ${answer.messageResponse.value.service.map((s) => s.name).join(", ")}`);
          }
        }
        console.log("The streaming demo (data request -> producers -> buffer -> consumer) arrives with the data request service.");
      } finally {
        await server.close();
      }
    });
}
