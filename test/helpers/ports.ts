/** Ports for servers that must be told theirs before they start. */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The kernel's ephemeral port range, which port 0 and outgoing connections draw from. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

const canBind = (port: number, host: string) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
      .once("error", () => resolve(false))
      .listen(port, host, () => server.close(() => resolve(true)));
  });

/**
 * A free TCP port for a server that is told its port before it starts (a
 * proxy, a crashed server coming back on its address). Taken below the
 * ephemeral range: a port that port 0 gave and was then let go can be taken
 * by any outgoing connection before the server binds it, which failed a
 * proxy's start with "Address already in use".
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const [low] = ephemeralRange();
  const from = 10_000;
  for (let i = 0; i < 200 && low - from > 1000; i++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (await canBind(port, host)) return port;
  }
  throw new Error(`no free port between ${from} and ${low} on ${host}`);
}
