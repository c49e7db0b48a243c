/**
 * A TCP proxy on loopback that passes bytes both ways until frozen; frozen,
 * it holds every connection open and passes nothing (a peer that went
 * silent: a hung host, a network that drops everything).
 */
import * as net from "node:net";

export interface FreezingProxy {
  /** `https://127.0.0.1:PORT`, to call the target through. */
  url: string;
  frozen: boolean;
  close(): void;
}

export async function startFreezingProxy(targetUrl: string): Promise<FreezingProxy> {
  const target = new URL(targetUrl);
  const sockets: net.Socket[] = [];
  const proxy: FreezingProxy = {
    url: "",
    frozen: false,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), "127.0.0.1");
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on("data", (chunk) => proxy.frozen || to.write(chunk));
      from.on("error", () => to.destroy());
      from.on("close", () => to.destroy());
    }
    sockets.push(client, upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return proxy;
}
