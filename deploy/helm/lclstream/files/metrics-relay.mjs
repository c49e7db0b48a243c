// Serves a service's Prometheus endpoint, which it binds to 127.0.0.1:METRICS_PORT, on the pod's
// own address (POD_IP:METRICS_PORT), where Prometheus scrapes it: each connection is relayed as is.
//
// Environment: POD_IP (required; the downward API's status.podIP), METRICS_PORT (default 9090).
import net from "node:net";

const port = Number(process.env.METRICS_PORT || 9090);
const host = process.env.POD_IP;
if (!host) {
  console.error("set POD_IP, the address to serve on");
  process.exit(2);
}
net
  .createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream).pipe(client);
  })
  .listen(port, host, () => console.log(`metrics relay: ${host.includes(":") ? `[${host}]` : host}:${port} -> 127.0.0.1:${port}`));
