/** `lclstream health`: asks a server whether it (or one of its services) is serving. */
import { type Command, Option } from "commander";
import { parseDuration } from "./options.js";
import { createClient } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { createMeshTransportFromCertDir } from "../common/client.js";

export function registerHealthCommand(program: Command): void {
  program
    .command("health")
    .description("check that a server is serving (grpc.health.v1); exits 0 when SERVING")
    .requiredOption("--url <url>", "server address, https://HOST:PORT")
    .requiredOption("--cert-dir <dir>", "directory with ca.crt, tls.crt and tls.key")
    .option("--service <name>", "a fully qualified service name; empty checks the whole server", "")
    .addOption(new Option("--timeout <duration>", "give up after this long, e.g. 500ms or 5s").argParser(parseDuration).default(5000, "5s"))
    .action(async (options: { url: string; certDir: string; service: string; timeout: number }) => {
      const client = createClient(Health, await createMeshTransportFromCertDir(options.url, options.certDir));
      const { status } = await client.check({ service: options.service }, { timeoutMs: options.timeout });
      console.log(Status[status]);
      process.exitCode = status === Status.SERVING ? 0 : 1;
    });
}
