/**
 * psik's own JobSpecs (test/fixtures/psik/) submitted unchanged with
 * `lclstream jobs submit` to a job queue on the local backend, with psik's
 * callbacks, `start` and `reached`.
 */
import { createHmac } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readJobSpecDocument } from "../../services/jobs/psik-spec.js";
import { signCallback } from "../../services/jobs/callbacks.js";
import { lclstream, lclstreamBin } from "../helpers/cli.js";
import { startJobQueueCli } from "../helpers/job-queue-cli.js";
import { parse as parseYaml } from "yaml";

const fixtures = fileURLToPath(new URL("../fixtures/psik/", import.meta.url));
const fixture = (name: string) => join(fixtures, name);

/** A callback receiver on loopback: every POST's body and signature header. */
async function startReceiver() {
  const received: { body: string; signature?: string; headers: Record<string, unknown> }[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ body, signature: req.headers["x-hub-signature-256"] as string | undefined, headers: req.headers });
      res.writeHead(200, { "content-type": "text/plain" }).end("OK");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { received, port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(r)) };
}

describe("psik's JobSpecs", () => {
  it("reads every fixture as psik does, with psik's defaults", async () => {
    const { spec } = readJobSpecDocument(JSON.parse(await readFile(fixture("readme-python-jobspec.json"), "utf8")));
    // duration "60" as psik's README writes it; the rest psik's defaults.
    expect(spec.resources).toMatchObject({ durationMinutes: 60, processCount: 2, gpuCoresPerProcess: 1, cpuCoresPerProcess: 1, exclusiveNodeUse: true });
    expect(spec).toMatchObject({ backend: "default", inheritEnvironment: true });
    const minimal = readJobSpecDocument({ script: "pwd" }).spec;
    expect(minimal.resources).toMatchObject({ durationMinutes: 10 });
    // This project's proto spellings too.
    expect(readJobSpecDocument({ script: "x", resources: { durationMinutes: 5 }, max_restarts: 2 }).spec).toMatchObject({
      resources: { durationMinutes: 5 },
      maxRestarts: 2,
    });
    expect(() => readJobSpecDocument({ script: "x", scrpt: 1 })).toThrow('"scrpt": not a psik JobSpec field');
    expect(() => readJobSpecDocument({ script: "x", environment: { N: 3 } })).toThrow("environment.N: values are strings");
    // psik's ResourceSpec ignores keys it does not know: so does this reader, saying so.
    expect(readJobSpecDocument({ script: "x", resources: { walltime: 3 } }).notes).toEqual(["resources.walltime is not a psik resource; it was ignored"]);
    expect(readJobSpecDocument(parseYaml(await readFile(fixture("docs-olcf-job.yaml"), "utf8"))).spec.resources).toMatchObject({
      durationMinutes: 60,
      nodeCount: 2,
      processesPerNode: 4,
    });
  });

  it("signs callbacks as psik does (psik's own test vector)", () => {
    expect(signCallback("Hello, World!", "It's a Secret to Everybody")).toBe("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  });

  describe("on a job queue", () => {
    let queue: Awaited<ReturnType<typeof startJobQueueCli>>;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    let dir: string;
    let env: NodeJS.ProcessEnv;
    const jobs = (...args: string[]) => queue.jobs(args);
    const watch = (name: string) => queue.watch(name);
    const submit = async (path: string) => {
      const r = await jobs("submit", path);
      expect(r.stderr).toBe("");
      return r.stdout.trim();
    };

    beforeAll(async () => {
      receiver = await startReceiver();
      // Two local backends written as psik.json writes them, one named as psik's example.yaml names its site's.
      queue = await startJobQueueCli(
        "backends:\n  local: {type: local}\n  defiant: {type: local, project_name: lcls}\ncallbackUrlPrefixes: ['http://127.0.0.1:']\n",
      );
      ({ dir, env } = queue);
    });
    afterAll(async () => {
      await queue?.close();
      await receiver?.close();
    });

    it("runs psik's example.json and the specs of psik's tests unchanged to COMPLETED", async () => {
      const runnable = [
        "example.json",
        "tests-test_backends-test_at.json",
        "tests-test_backends-test_local.json",
        "tests-test_config-test_create.json",
        "tests-test_hot-test_hot_start.json",
        "tests-test_models-1.json",
        "tests-test_models-2.json",
        "tests-test_psik-test_app.json",
        "tests-test_psik-test_start.json",
        "tests-test_web-post_json-body.json",
      ];
      const names = await Promise.all(runnable.map((f) => submit(fixture(f))));
      for (const [i, name] of names.entries()) {
        expect(name, runnable[i]).toMatch(/^jobs\/\d+\.\d{3}$/);
        expect(
          (await watch(name)).map((t) => t[2]),
          runnable[i],
        ).toEqual(["NEW", "QUEUED", "ACTIVE", "COMPLETED"]);
      }
      // example.json echoes psik's variables: $nodes and $jobndx among them.
      const out = (await jobs("logs", names[0]!)).stdout;
      expect(out).toContain("This is an example job.\n");
      expect(out).toContain("\n1\n"); // $nodes (and $jobndx)
      // test_hot_start's twin needs the input file psik's hot-start unpacks: it fails here, saying so.
      const zhot = await submit(fixture("tests-test_hot-test_zhot_start.json"));
      expect((await watch(zhot)).at(-1)![2]).toBe("FAILED");
      expect((await jobs("logs", zhot)).stderr).toContain("data.txt");
      // Eleven jobs and their CLI calls: 16-17 s alone, past the default 20 s in a busy full run.
    }, 60_000);

    it("refuses psik's multi-node and GPU examples on the local backend, saying why", async () => {
      const multi = await jobs("submit", fixture("example.yaml"));
      expect(multi.code).toBe(1);
      expect(multi.stderr).toContain("spec.resources.node_count: the local backend has one node; use the slurm backend for more");
      const gpu = await jobs("submit", fixture("readme-python-jobspec.json"));
      expect(gpu.stderr).toContain("spec.resources.gpu_cores_per_process: the local backend does not schedule GPUs");
      const nowhere = await lclstream(["jobs", "submit", "-"], { env, input: "script: 'true'\ncallback: http://10.1.2.3/hook\n" });
      expect(nowhere.stderr).toContain("spec.callback: goes nowhere this job queue sends callbacks: its URL must start with http://127.0.0.1:");
      const sneaky = await lclstream(["jobs", "submit", "-"], { env, input: "script: 'true'\ncallback: http://127.0.0.1:80@10.1.2.3/hook\n" });
      expect(sneaky.stderr).toContain("spec.callback: may not carry a user name or password");
      const unknown = await lclstream(["jobs", "submit", "-"], { env, input: "script: 'true'\nbackend: polaris\n" });
      expect(unknown.stderr).toContain('unknown backend "polaris"; this job queue has: local, defiant (and default, meaning local)');
    });

    it("POSTs every transition of psik's callback test to the receiver, in order and signed", async () => {
      const text = (await readFile(fixture("tests-test_backends-test_local_cb.json"), "utf8")).replace("PORT", String(receiver.port));
      const plain = join(dir, "cb.json");
      await writeFile(plain, text);
      const signed = join(dir, "cb-signed.json");
      await writeFile(signed, JSON.stringify({ ...JSON.parse(text), cb_secret: "It's a Secret", cb_headers: { authorization: "Bearer t" } }));
      receiver.received.length = 0;
      const first = await submit(plain);
      await watch(first);
      const name = await submit(signed);
      const transitions = await watch(name);
      const id = name.slice("jobs/".length);
      const deadline = Date.now() + 10_000;
      while (receiver.received.filter((r) => r.body.includes(id)).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const mine = receiver.received.filter((r) => JSON.parse(r.body).jobid === id);
      expect(mine.map((r) => JSON.parse(r.body))).toEqual(
        transitions.slice(1).map(([, run, state, info]) => ({ jobid: id, jobndx: Number(run!.slice(4)), state: state!.toLowerCase(), info: info ?? "" })),
      );
      for (const r of mine) {
        expect(r.signature).toBe(`sha256=${createHmac("sha256", "It's a Secret").update(r.body).digest("hex")}`);
        expect(r.headers.authorization).toBe("Bearer t");
      }
      expect(receiver.received.filter((r) => JSON.parse(r.body).jobid === first.slice(5)).every((r) => r.signature === undefined)).toBe(true);
      // The secret is never shown again.
      expect((await jobs("get", name)).stdout).toContain('"cb_secret": "*****"');
    });

    it("starts a finished job again as a new run, and lets a script report its own end", async () => {
      const spec = join(dir, "twice.yaml");
      await writeFile(spec, 'script: echo "run $jobndx of $jobid on $nodes node"\n');
      const name = await submit(spec);
      await watch(name);
      expect((await jobs("start", name)).stdout.trim()).toMatch(new RegExp(`^${name}: run 2 (queued|active|completed)$`));
      expect((await watch(name)).map((t) => `${t[1]} ${t[2]}`)).toEqual([
        "run 1 NEW",
        "run 1 QUEUED",
        "run 1 ACTIVE",
        "run 1 COMPLETED",
        "run 2 QUEUED",
        "run 2 ACTIVE",
        "run 2 COMPLETED",
      ]);
      expect((await jobs("logs", name, "--run", "2")).stdout).toBe(`run 2 of ${name.slice(5)} on 1 node\n`);
      const running = await lclstream(["jobs", "submit", "-"], { env, input: "script: sleep 60\n" });
      const refused = await jobs("start", running.stdout.trim());
      expect(refused.stderr).toContain("only a finished job can be started again");
      await jobs("cancel", running.stdout.trim());

      const reporting = join(dir, "reached.yaml");
      await writeFile(reporting, `script: |\n  "${process.execPath}" "${lclstreamBin}" jobs reached completed "results written"\n  sleep 60\n`);
      const early = await submit(reporting);
      const started = Date.now();
      const ended = await watch(early);
      expect(ended.at(-1)!.slice(2)).toEqual(["COMPLETED", "results written"]);
      expect(Date.now() - started).toBeLessThan(30_000);
      const bad = await lclstream(["jobs", "reached", "done"], { env: { base: dir, jobndx: "1" } });
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("Allowed choices are new, queued, active, completed, failed, canceled");
    });
  });
});
