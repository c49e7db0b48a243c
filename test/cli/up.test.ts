/**
 * `lclstream up` as an operator runs it: a policy file added to the mesh's
 * own, every service's metrics on a port printed in the banner (the time to
 * the first batch among the request service's), and logs in a file rather
 * than on the terminal.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { issueOffline } from "../../services/ca/offline.js";
import { createMeshTransport } from "../../services/common/client.js";
import { capture, lclstream, lclstreamBin, type RunningCommand, startLclstream } from "../helpers/cli.js";
import { run } from "../helpers/tools.js";
import { internalConfig } from "../helpers/producer-config.js";

describe("lclstream up --policy --metrics-port --log-file", () => {
  let dir: string;
  let up: RunningCommand;
  const logFile = () => join(dir, "logs", "mesh.log");

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-up-"));
    await writeFile(join(dir, "policy.yaml"), stringify({ admins: ["user/carol"], experiments: { xpp1234: ["user/alice"] } }));
    up = await startLclstream(
      ["up", "--state-dir", join(dir, "state"), "--buffers", "2", "--policy", join(dir, "policy.yaml"), "--metrics-port", "0", "--log-file", logFile()],
      [/^lclstream is up/, /metrics .*\(request\)$/, /^ {2}logs /],
      60_000,
      { ...process.env, LCLSTREAM_LOG_LEVEL: "info" },
    );
  }, 90_000);
  afterAll(async () => {
    const { code, stderr } = await up.stop();
    expect(code).toBe(0);
    // The logs went to the file: nothing JSON on the terminal.
    expect(stderr.split("\n").filter((l) => l.startsWith("{"))).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  });

  it("prints each service's metrics URL, and the request service's counts the time to each request's first batch", async () => {
    for (const service of ["ca", "jobs", "buffer", "producer", "request", "buffer-1"])
      expect(up.lines.join("\n")).toMatch(new RegExp(`metrics +http://127\\.0\\.0\\.1:\\d+/metrics \\(${service}\\)`));
    const metrics = capture(up.lines, /metrics +(http:\S+) \(request\)/);
    expect(await (await fetch(metrics)).text()).toMatch(/^lclstream_request_time_to_first_batch_seconds_count(\{[^}]*\})? 0$/m);
    const request = join(dir, "request.yaml");
    await writeFile(request, stringify({ producer: internalConfig(20, { value: { type: "SyntheticScalar" } }) }));
    const got = await lclstream(["get", request, "--state-dir", join(dir, "state")], { timeoutMs: 60_000 });
    expect(got.code, got.stderr).toBe(0);
    const scraped = await (await fetch(metrics)).text();
    expect(scraped).toMatch(/^lclstream_request_time_to_first_batch_seconds_count(\{[^}]*\})? 1$/m);
    expect(Number(/^lclstream_request_time_to_first_batch_seconds_sum(?:\{[^}]*\})? (\S+)$/m.exec(scraped)?.[1])).toBeGreaterThan(0);
  }, 90_000);

  it("shows get's progress on a terminal with the request's total, percent, elapsed time and ETA", async () => {
    const request = join(dir, "counted.yaml");
    await writeFile(request, stringify({ producer: internalConfig(40, { value: { type: "SyntheticScalar" } }, { rateHz: 40, paced: true }) }));
    // `script` gives the command a terminal, as a user's shell does.
    const command = [process.execPath, lclstreamBin, "get", request, "--state-dir", join(dir, "state")].map((w) => `'${w}'`).join(" ");
    const { code, stdout, stderr } = await run("script", ["-qfec", command, "/dev/null"], 60_000);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/\[=+\] 100% \| 40\/40 events \| [\d.]+ MB\/s \| lag \d+ batches \| \S+ elapsed, ETA/);
  }, 90_000);

  it("lets the identities the policy file names ask for their experiment's data, and no other's", async () => {
    const alice = await issueOffline(join(dir, "state"), { identity: "user/alice" });
    const endpoints = JSON.parse(await readFile(join(dir, "state", "endpoints.json"), "utf8"));
    const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: endpoints.request, tls: alice }));
    const producer = internalConfig(4, { value: { type: "SyntheticScalar" } });
    const { dataRequest } = await requests.createDataRequest({ dataRequest: { experiment: "xpp1234", producer } });
    expect(dataRequest!.owner).toMatch(/\/user\/alice$/);
    await requests.cancelDataRequest({ name: dataRequest!.name });
    const refused = await requests.createDataRequest({ dataRequest: { experiment: "mfx99", producer } }).catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.PermissionDenied);
    // The policy's admins are every service's admins: carol may read the CA's audit log, alice may not.
    const carol = await issueOffline(join(dir, "state"), { identity: "user/carol" });
    const { certificates } = await createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: endpoints.ca, tls: carol })).listCertificates({});
    expect(certificates.map((c) => c.identity.replace(/^spiffe:\/\/[^/]+\//, ""))).toContain("user/alice");
    const notAdmin = await createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: endpoints.ca, tls: alice }))
      .listCertificates({})
      .catch((e: unknown) => ConnectError.from(e));
    expect((notAdmin as ConnectError).code).toBe(Code.PermissionDenied);
  }, 60_000);

  it("exports every metric the Grafana dashboard plots (deploy/grafana/lclstream.json)", async () => {
    const exported = new Set<string>();
    for (const [, url] of up.lines.join("\n").matchAll(/metrics +(http:\S+) \(\w+\)/g)) {
      for (const [, name, type] of (await (await fetch(url!)).text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        exported.add(name!);
        if (type === "histogram") for (const part of ["_bucket", "_sum", "_count"]) exported.add(`${name}${part}`);
      }
    }
    expect(exported.size).toBeGreaterThan(30);
    const dashboard = JSON.parse(await readFile(join(import.meta.dirname, "..", "..", "deploy", "grafana", "lclstream.json"), "utf8"));
    const exprs: string[] = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(15);
    const plotted = new Set(exprs.flatMap((e) => e.match(/\blclstream_[a-z0-9_]+/g) ?? []));
    expect([...plotted].filter((name) => !exported.has(name))).toEqual([]);
  });

  it("writes the services' JSON logs to the file", async () => {
    const lines = (await readFile(logFile(), "utf8")).trim().split("\n");
    expect(lines.length).toBeGreaterThan(3);
    const names = new Set(lines.map((l) => (JSON.parse(l) as { name: string }).name));
    expect(names).toContain("request");
  });
});
