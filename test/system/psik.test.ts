/**
 * psik's callbacks as psik itself checks them: a receiver built on psik's own
 * `psik.web.verify_signature` (PyPI psik, in .tools/psik) takes every
 * transition of a job the job queue runs; and psik's README JobSpec, an `rc`
 * script, runs unchanged.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startJobQueueCli } from "../helpers/job-queue-cli.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixture = (name: string) => join(root, "test/fixtures/psik", name);

/** An HTTP server that answers 200 only to callbacks psik's verify_signature accepts. */
const receiverPy = `
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from psik.web import verify_signature
secret = sys.argv[1]
class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode("utf-8")
        try:
            verify_signature(body, secret, self.headers.get("x-hub-signature-256"))
            ok = True
        except Exception as e:  # aiohttp's HTTPForbidden
            ok = False
        print(json.dumps({"ok": ok, "body": body}), flush=True)
        self.send_response(200 if ok else 403)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"OK" if ok else b"forbidden")
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
`;

async function startReceiver(secret: string) {
  const child: ChildProcess = spawn(join(root, ".tools/psik/bin/python"), ["-c", receiverPy, secret], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const received: { ok: boolean; body: string }[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the psik receiver exited with ${code}`)));
    lines.once("line", (line) => resolve(Number(line)));
  });
  lines.on("line", (line) => received.push(JSON.parse(line)));
  return { port, received, close: () => child.kill() };
}

describe("psik's callbacks, verified by psik", () => {
  let queue: Awaited<ReturnType<typeof startJobQueueCli>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    receiver = await startReceiver("psik's own secret");
    queue = await startJobQueueCli("callbackUrlPrefixes: ['http://127.0.0.1:']\n");
  });
  afterAll(async () => {
    await queue?.close();
    receiver?.close();
  });

  async function submitCallbackTest(secret: string) {
    const spec = JSON.parse((await readFile(fixture("tests-test_backends-test_local_cb.json"), "utf8")).replace("PORT", String(receiver.port)));
    const path = join(queue.dir, `cb-${secret.length}.json`);
    await writeFile(path, JSON.stringify({ ...spec, cb_secret: secret }));
    const submitted = await queue.jobs(["submit", path]);
    expect(submitted.stderr).toBe("");
    return submitted.stdout.trim();
  }

  it("sends every transition after NEW, in order, each accepted by psik's verify_signature", async () => {
    const name = await submitCallbackTest("psik's own secret");
    const transitions = await queue.watch(name);
    const id = name.slice("jobs/".length);
    await expect.poll(() => receiver.received.filter((r) => JSON.parse(r.body).jobid === id).length, { timeout: 10_000 }).toBe(3);
    const mine = receiver.received.filter((r) => JSON.parse(r.body).jobid === id);
    expect(mine.every((r) => r.ok)).toBe(true);
    expect(mine.map((r) => JSON.parse(r.body))).toEqual(
      transitions.slice(1).map(([, run, state, info]) => ({ jobid: id, jobndx: Number(run!.slice(4)), state: state!.toLowerCase(), info })),
    );
    expect(mine.map((r) => JSON.parse(r.body).state)).toEqual(["queued", "active", "completed"]);
  });

  it("is refused by psik's verify_signature when signed with another secret, and the job still completes", async () => {
    const name = await submitCallbackTest("not the receiver's secret");
    expect((await queue.watch(name)).at(-1)![2]).toBe("COMPLETED");
    const id = name.slice("jobs/".length);
    // Refused, then tried again.
    await expect.poll(() => receiver.received.filter((r) => JSON.parse(r.body).jobid === id).length, { timeout: 10_000 }).toBeGreaterThan(1);
    expect(receiver.received.filter((r) => JSON.parse(r.body).jobid === id).some((r) => r.ok)).toBe(false);
  });

  it("runs psik's README JobSpec, an rc script, unchanged", async () => {
    const submitted = await queue.jobs(["submit", fixture("readme-jobspec.json")]);
    expect(submitted.stderr).toBe("");
    const name = submitted.stdout.trim();
    expect((await queue.watch(name)).map((t) => t[2])).toEqual(["NEW", "QUEUED", "ACTIVE", "COMPLETED"]);
    expect((await queue.jobs(["logs", name])).stdout).toBe("moo\n");
  });
});
