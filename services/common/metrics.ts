/**
 * Prometheus metrics (prom-client): one registry per server, RPC counters and
 * latency, Node process metrics, and a plain HTTP endpoint to scrape.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The RPC metrics of one server. */
export class RpcMetrics {
  readonly registry: Registry;
  readonly #calls: Counter<"service" | "method" | "code">;
  readonly #duration: Histogram<"service" | "method" | "code">;
  readonly #inFlight: Gauge<"service" | "method">;
  readonly #sent: Counter<"service" | "method">;
  readonly #released: Counter;

  constructor(serverName: string) {
    this.registry = new Registry();
    this.registry.setDefaultLabels({ server: serverName });
    collectDefaultMetrics({ register: this.registry, prefix: "lclstream_" });
    const registers = [this.registry];
    this.#calls = new Counter({
      name: "lclstream_rpc_calls_total",
      help: "RPCs finished, by service, method and gRPC code.",
      labelNames: ["service", "method", "code"],
      registers,
    });
    this.#duration = new Histogram({
      name: "lclstream_rpc_duration_seconds",
      help: "RPC duration from start to the last message, in seconds.",
      labelNames: ["service", "method", "code"],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 600],
      registers,
    });
    this.#inFlight = new Gauge({
      name: "lclstream_rpc_in_flight",
      help: "RPCs running now.",
      labelNames: ["service", "method"],
      registers,
    });
    this.#sent = new Counter({
      name: "lclstream_rpc_stream_messages_sent_total",
      help: "Messages sent on server streams.",
      labelNames: ["service", "method"],
      registers,
    });
    this.#released = new Counter({
      name: "lclstream_native_received_bytes_released_total",
      help: "Bytes of messages received on the native data path whose memory was given back as soon as nothing read it (the rest waits for V8's collector).",
      registers,
    });
  }

  /** A received message's memory was given back early (see Lease in byte-parts.ts). */
  released(bytes: number): void {
    this.#released.inc(bytes);
  }

  started(service: string, method: string): void {
    this.#inFlight.inc({ service, method });
  }

  finished(service: string, method: string, code: string, seconds: number): void {
    this.#inFlight.dec({ service, method });
    this.#calls.inc({ service, method, code });
    this.#duration.observe({ service, method, code }, seconds);
  }

  sent(service: string, method: string): void {
    this.#sent.inc({ service, method });
  }
}

/** Serves `GET /metrics` from a registry; returns the listening server. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server & { port: number }> {
  const server = createHttpServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/metrics") {
      res.writeHead(404).end("not found: metrics are at GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: Error) => res.writeHead(500).end(`${error.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}
