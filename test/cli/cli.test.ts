/** The built `lclstream` command, run as a user runs it. */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type LclstreamServer } from "../../services/common/server.js";
import { writeCertDir } from "../../services/common/pki.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { createTestPki, trustDomain, type TestPki } from "../helpers/pki.js";
import { identityUri } from "../../services/common/identity.js";
import { startServer } from "../helpers/servers.js";
import { capture, lclstream, startLclstream } from "../helpers/cli.js";
import { Command } from "commander";
import { createProgram, moduleOfCommand } from "../../services/cli/program.js";
import { grantsOf } from "../../services/cli/requests.js";
import { examplesOf } from "../../services/cli/examples.js";

describe("lclstream command", () => {
  it("prints the package version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8"));
    for (const flag of ["--version", "-V"]) {
      const { code, stdout } = await lclstream([flag]);
      expect(code).toBe(0);
      expect(stdout.trim()).toBe(pkg.version);
    }
  });

  it("takes up --grant as IDENTITY:EXPERIMENT, and says how to write it when it is not", async () => {
    expect(grantsOf(["user/alice:xpp1234", "user/bob:xpp1234", "service/viewer:mfx99"])).toEqual({
      xpp1234: ["user/alice", "user/bob"],
      mfx99: ["service/viewer"],
    });
    expect(grantsOf([])).toBeUndefined();
    const { code, stderr } = await lclstream(["up", "--grant", "alice", "--state-dir", "/nonexistent/never-made"]);
    expect(code).toBe(1);
    expect(stderr.trim()).toBe("lclstream: --grant alice: give IDENTITY:EXPERIMENT, for example user/alice:xpp1234");
  });

  it("names a missing file in one plain line", async () => {
    const { code, stderr } = await lclstream(["get", "no-such-request.yaml", "--url", "https://127.0.0.1:9", "--cert-dir", "."]);
    expect(code).toBe(1);
    expect(stderr.trim()).toBe("lclstream: no-such-request.yaml: no such file");
  });

  it("prints help listing its commands, with examples", async () => {
    const { code, stdout } = await lclstream(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("Examples:\n  $ lclstream up &");
    expect((await lclstream(["get", "--help"])).stdout).toContain("$ lclstream get --resume ID --out run1");
    expect(stdout).toContain("Usage: lclstream");
    expect(stdout).toMatch(/health \[options\]/);
    expect(stdout).toMatch(/demo/);
  });

  it("prints the help of every command and subcommand", async () => {
    const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
    const commands = all(await createProgram());
    expect(commands.length).toBeGreaterThan(20);
    for (const c of commands) expect(c.helpInformation(), c.name()).toContain(`Usage: `);
    // And an Examples section, for every command (commander prints it after the help).
    const path = (c: Command): string[] => (c.parent ? [...path(c.parent), c.name()] : []);
    for (const c of commands) expect(examplesOf(path(c).join(" ")), path(c).join(" ") || "lclstream").toBeDefined();
  });

  it("loads, for a command, the module that defines it, and only that one", async () => {
    const everyCommand = (await createProgram()).commands.map((c) => c.name());
    expect(Object.keys(moduleOfCommand).sort()).toEqual([...everyCommand].sort());
    for (const [name, load] of Object.entries(moduleOfCommand)) {
      const alone = new Command();
      (await load())(alone);
      expect(
        alone.commands.map((c) => c.name()),
        name,
      ).toContain(name);
      const program = await createProgram(["node", "lclstream", name, "--help"]);
      expect(program.commands.map((c) => c.name()).sort(), name).toEqual(alone.commands.map((c) => c.name()).sort());
    }
  });

  it("refuses an unknown command", async () => {
    const { code, stderr } = await lclstream(["frobnicate"]);
    expect(code).not.toBe(0);
    expect(stderr).toContain("unknown command");
  });

  it("runs the demo: a synthetic run streams through the whole mesh and every event arrives", async () => {
    const { code, stdout, stderr } = await lclstream(["demo", "--events", "6", "--ranks", "2"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/received 6 events in 4 batches/);
    expect(stdout).toContain("end of stream: 4 batches, 6 events from 2 ranks: every event arrived once");
    expect(stdout).toContain("request succeeded");
    // In plain words, and where to go next.
    expect(stdout).toMatch(/lag: batches waiting for it/);
    expect(stdout).toMatch(/next, with `npm link`[\s\S]*lclstream up &[\s\S]*lclstream get examples\/crystallography\.yaml[\s\S]*lclstream view/);
  });

  describe("health", () => {
    let pki: TestPki;
    let server: LclstreamServer;
    let dir: string;

    beforeAll(async () => {
      pki = await createTestPki();
      server = await startServer(pki, { services: [serve(BufferService, {})] });
      dir = await mkdtemp(join(tmpdir(), "lclstream-cli-"));
      await writeCertDir(join(dir, "alice"), pki.alice);
    });
    afterAll(async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    });

    it("prints SERVING and exits 0", async () => {
      const { code, stdout } = await lclstream(["health", "--url", server.url, "--cert-dir", join(dir, "alice")]);
      expect(stdout.trim()).toBe("SERVING");
      expect(code).toBe(0);
    });

    it("exits non-zero for an unknown service, saying so", async () => {
      const { code, stderr } = await lclstream(["health", "--url", server.url, "--cert-dir", join(dir, "alice"), "--service", "x.Y"]);
      expect(code).toBe(1);
      expect(stderr).toContain('unknown service "x.Y"');
    });

    it("says what a cert directory holds when it is missing", async () => {
      const { code, stderr } = await lclstream(["health", "--url", server.url, "--cert-dir", join(dir, "nobody")]);
      expect(code).toBe(1);
      expect(stderr).toContain("ca.crt, tls.crt and tls.key");
    });
  });
});

describe("the services as separate processes, as a deployment runs them", () => {
  it("serves the producer and the data request services from their serve commands, behind a named front proxy", async () => {
    const pki = await createTestPki();
    const dir = await mkdtemp(join(tmpdir(), "lclstream-serve-"));
    await writeCertDir(join(dir, "service"), pki.server);
    await writeCertDir(join(dir, "alice"), pki.alice);
    const common = ["--cert-dir", join(dir, "service"), "--state-dir", join(dir, "state"), "--proxy-identity", identityUri(trustDomain, "service", "front")];
    const producer = await startLclstream(["producer", "serve", ...common], [/^producer: https:/]);
    const request = await startLclstream(
      [
        "requests",
        "serve",
        ...common,
        "--buffer-url",
        "https://127.0.0.1:9",
        "--jobs-url",
        "https://127.0.0.1:9",
        "--producer-cert-dir",
        join(dir, "service"),
        "--metrics-port",
        "0",
        // Another loopback address: the metrics bind where they are told (0.0.0.0 in a pod).
        "--metrics-host",
        "127.0.0.2",
      ],
      [/^request: https:/, /^request metrics: http:/],
    );
    // Its metrics, at the URL it prints: the requests in each state among them.
    const metricsUrl = capture(request.lines, /^request metrics: (http:\S+)/);
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.2:\d+\/metrics$/);
    const scraped = await (await fetch(metricsUrl)).text();
    expect(scraped).toContain("# TYPE lclstream_request_requests gauge");
    expect(scraped).toMatch(/lclstream_request_requests\{state="running"[^}]*\} 0/);
    try {
      for (const [running, service] of [
        [producer, "lclstream.producer.v1.ProducerService"],
        [request, "lclstream.request.v1.DataRequestService"],
      ] as const) {
        const url = capture(running.lines, /^\w+: (https:\S+)/);
        const { code, stdout } = await lclstream(["health", "--url", url, "--cert-dir", join(dir, "alice"), "--service", service]);
        expect([code, stdout.trim()]).toEqual([0, "SERVING"]);
      }
    } finally {
      expect((await producer.stop()).code).toBe(0);
      expect((await request.stop()).code).toBe(0);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
