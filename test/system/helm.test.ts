/**
 * The Helm chart (deploy/helm/lclstream), with no cluster: `helm lint`, `helm template`, every
 * rendered object decoded strictly into Kubernetes' own API types with the chart's rules
 * (deploy/validate), the rendered Envoy config against Envoy's API and against mesh/envoy.yaml,
 * and the chart's own scripts run for real: the PKI making and publishing the certificates to a
 * stand-in API server, a pod taking its certificate, the health probe a pod runs, and its metrics
 * served where its rendered --metrics-host and --metrics-port say.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { run, tool } from "../helpers/tools.js";
import { freePort } from "../helpers/ports.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const chart = join(root, "deploy", "helm", "lclstream");

/** A rendered Kubernetes object, as parsed YAML (the validator checks their types). */
type K8sObject = any;

/** The objects of a multi-document YAML stream. */
function objectsOf(stream: string): K8sObject[] {
  return parseAllDocuments(stream)
    .map((d) => d.toJS({ maxAliasCount: -1 }))
    .filter(Boolean);
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} rendered`);
  return found;
}

function container(workload: K8sObject, name: string): K8sObject {
  const spec = workload.spec.template.spec;
  const found = [...(spec.initContainers ?? []), ...spec.containers].find((c: K8sObject) => c.name === name);
  if (!found) throw new Error(`no container ${name} in ${workload.metadata.name}`);
  return found;
}

/** The values following each occurrence of `flag` in an argument list. */
function flagValues(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag && i + 1 < args.length ? [args[i + 1]!] : []));
}

/** An Envoy config with its upstream addresses and SNI taken out: what may differ between compose and the cluster. */
function withoutUpstreamHosts(text: string): unknown {
  const config = parse(text, { maxAliasCount: -1 });
  for (const cluster of config.static_resources.clusters) {
    if (cluster.name === "envoy_admin") continue;
    for (const group of cluster.load_assignment.endpoints) for (const e of group.lb_endpoints) e.endpoint.address.socket_address.address = "HOST";
    cluster.transport_socket.typed_config.sni = "HOST";
  }
  return config;
}

describe("the Helm chart", () => {
  let dir: string;
  let helm: (...args: string[]) => ReturnType<typeof run>;
  let validate: (stream: string, ...flags: string[]) => ReturnType<typeof run>;
  let rendered: string;
  let objects: K8sObject[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-helm-"));
    const helmBin = tool("helm");
    // Helm's own state in the test's directory, not the user's.
    const env = {
      ...process.env,
      HELM_CACHE_HOME: join(dir, "helm-cache"),
      HELM_CONFIG_HOME: join(dir, "helm-config"),
      HELM_DATA_HOME: join(dir, "helm-data"),
    };
    helm = (...args) => run(helmBin, args, 60_000, env);
    let n = 0;
    validate = async (stream, ...flags) => {
      const file = join(dir, `rendered-${n++}.yaml`);
      await writeFile(file, stream);
      return run(tool("k8s-validate"), [...flags, file]);
    };
    const out = await helm("template", "lclstream", chart, "--namespace", "science");
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    rendered = out.stdout;
    objects = objectsOf(rendered);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("passes helm lint --strict", async () => {
    const { code, stdout } = await helm("lint", "--strict", chart);
    expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(code).toBe(0);
  });

  it("renders, with its default values, objects that decode strictly into Kubernetes' types and keep the chart's rules", async () => {
    const { code, stdout } = await validate(rendered);
    expect(stdout).toMatch(
      /: valid \(23 objects, 2 ConfigMap, 2 Deployment, 6 NetworkPolicy, 1 Role, 1 RoleBinding, 6 Service, 1 ServiceAccount, 4 StatefulSet\)/,
    );
    expect(code).toBe(0);
    // The pieces the issue asks for, as rendered.
    const buffer = find(objects, "StatefulSet", "lclstream-buffer");
    expect(buffer.spec.replicas).toBe(3);
    expect(buffer.spec.volumeClaimTemplates.map((c: K8sObject) => c.metadata.name)).toEqual(["state"]);
    expect(find(objects, "Service", "lclstream-buffer").spec.clusterIP).toBe("None");
    for (const name of ["ca", "jobs", "request"]) expect(find(objects, "StatefulSet", `lclstream-${name}`).spec.volumeClaimTemplates).toHaveLength(1);
    const front = find(objects, "Service", "lclstream-front");
    expect(front.spec.type).toBe("LoadBalancer");
    expect(front.spec.ports.map((p: K8sObject) => p.port)).toEqual([8443, 8444]);
    expect(container(find(objects, "Deployment", "lclstream-front"), "envoy").image).toBe("envoyproxy/envoy:v1.32-latest");
    // Health: lclstream health over mTLS with the pod's own certificate; the CA's port.
    const jobs = container(find(objects, "StatefulSet", "lclstream-jobs"), "jobs");
    const probe = ["lclstream", "health", "--url", "https://localhost:8443", "--cert-dir", "/certs/jobs", "--timeout", "2s"];
    expect(jobs.readinessProbe.exec.command).toEqual(probe);
    expect(jobs.livenessProbe.exec.command).toEqual(probe);
    expect(container(find(objects, "StatefulSet", "lclstream-ca"), "ca").readinessProbe.tcpSocket).toEqual({ port: "grpc" });
    // Metrics on every service, on the pod's address: --metrics-port and --metrics-host 0.0.0.0, the
    // service's own port named metrics (no relay beside it), Prometheus' annotations, the policy's port.
    for (const [kind, name] of [
      ["StatefulSet", "ca"],
      ["StatefulSet", "jobs"],
      ["StatefulSet", "buffer"],
      ["Deployment", "producer"],
      ["StatefulSet", "request"],
    ] as const) {
      const workload = find(objects, kind, `lclstream-${name}`);
      const server = container(workload, name);
      expect(flagValues(server.args, "--metrics-port")).toEqual(["9090"]);
      expect(flagValues(server.args, "--metrics-host")).toEqual(["0.0.0.0"]);
      expect(server.ports).toContainEqual({ name: "metrics", containerPort: 9090 });
      expect(workload.spec.template.spec.containers.map((c: K8sObject) => c.name)).toEqual(name === "ca" ? ["ca", "pki-refresh"] : [name]);
      expect(workload.spec.template.metadata.annotations).toMatchObject({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
      });
      const policy = find(objects, "NetworkPolicy", `lclstream-${name}`);
      expect(policy.spec.ingress).toContainEqual({ from: [{ namespaceSelector: {} }], ports: [{ port: "metrics" }] });
    }
  });

  it("renders one --buffer-url per buffer replica, and the front door's routes and the buffers' certificate with them", async () => {
    const out = await helm("template", "lclstream", chart, "--namespace", "science", "--set", "buffer.replicas=5");
    expect(out.code).toBe(0);
    const { code, stdout } = await validate(out.stdout);
    expect(stdout).toMatch(/: valid \(/);
    expect(code).toBe(0);
    const five = objectsOf(out.stdout);
    expect(find(five, "StatefulSet", "lclstream-buffer").spec.replicas).toBe(5);
    const urls = flagValues(container(find(five, "StatefulSet", "lclstream-request"), "request").args, "--buffer-url");
    expect(urls).toEqual([0, 1, 2, 3, 4].map((i) => `https://lclstream-buffer-${i}.lclstream-buffer:8443`));
    const envoy = parse(find(five, "ConfigMap", "lclstream-front-envoy").data["envoy.yaml"], { maxAliasCount: -1 });
    const clusters = envoy.static_resources.clusters.map((c: K8sObject) => c.name);
    expect(clusters).toEqual(["request", "buffer", "buffer-1", "buffer-2", "buffer-3", "buffer-4", "ca", "ca_enroll", "jobs", "producer", "envoy_admin"]);
    const pki = find(five, "ConfigMap", "lclstream-scripts").data["pki.sh"];
    for (let i = 0; i < 5; i++) expect(pki).toContain(`--dns lclstream-buffer-${i}.lclstream-buffer `);
  });

  it("fails objects that are not Kubernetes', or break the chart's rules", async () => {
    // A misspelt field, as text: the strict decoder names it.
    const typo = rendered.replace("readinessProbe:", "readinesProbe:");
    expect(typo).not.toBe(rendered);
    let result = await validate(typo);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /INVALID\n {2}- doc \d+ \(Deployment lclstream-front, from lclstream\/templates\/front.yaml\): does not decode strictly as Kubernetes. apps\/v1, Kind=Deployment: strict decoding error: unknown field "spec\.template\.spec\.containers\[0\]\.readinesProbe"/,
    );
    // The object still takes part in the other checks, so one mistake is not reported as many.
    expect(result.stdout.match(/^ {2}- /gm)).toHaveLength(2);
    expect(result.stdout).toMatch(/container "envoy" serves ports but has no readinessProbe/);

    // Each of these breaks one rule of an otherwise valid rendering.
    const broken: [string, (all: K8sObject[]) => void, RegExp][] = [
      ["an unknown kind", (all) => all.push({ apiVersion: "v1", kind: "Frobnicator", metadata: { name: "x" } }), /no kind "Frobnicator" is registered/],
      [
        "a wrong type",
        (all) => (find(all, "StatefulSet", "lclstream-buffer").spec.replicas = "three"),
        /cannot unmarshal string into Go struct field .*replicas of type int32/,
      ],
      [
        "a container without requests",
        (all) => delete container(find(all, "StatefulSet", "lclstream-jobs"), "jobs").resources.requests,
        /container "jobs" has no cpu request/,
      ],
      [
        "a service without a liveness probe",
        (all) => delete container(find(all, "StatefulSet", "lclstream-request"), "request").livenessProbe,
        /container "request" serves ports but has no livenessProbe/,
      ],
      [
        "a selector that misses its pods",
        (all) => (find(all, "Deployment", "lclstream-producer").spec.selector.matchLabels["app.kubernetes.io/component"] = "producers"),
        /spec\.selector .* does not match the pod template's labels/,
      ],
      [
        "a Service that selects nothing",
        (all) => (find(all, "Service", "lclstream-jobs").spec.selector["app.kubernetes.io/component"] = "job"),
        /selector .* matches no workload's pods/,
      ],
      [
        "another service's certificate",
        (all) => {
          const volume = find(all, "Deployment", "lclstream-producer").spec.template.spec.volumes.find((v: K8sObject) => v.secret);
          volume.secret.secretName = "lclstream-certs-request";
        },
        /holds request's certificate \(Secret "lclstream-certs-request"\), not this producer pod's own/,
      ],
      [
        "the whole certificate set",
        (all) => {
          const spec = find(all, "StatefulSet", "lclstream-buffer").spec.template.spec;
          spec.volumes.push({ name: "all-certs", emptyDir: {} });
          spec.containers[0].volumeMounts.push({ name: "all-certs", mountPath: "/certs" });
        },
        /mounts "all-certs" at \/certs: outside the PKI a pod mounts only its own \/certs\/buffer/,
      ],
      [
        "the first admin's certificate",
        (all) => {
          const spec = find(all, "StatefulSet", "lclstream-jobs").spec.template.spec;
          spec.volumes.push({ name: "admin", secret: { secretName: "lclstream-certs-admin" } });
        },
        /holds the first admin's certificate/,
      ],
      [
        "a Secret nothing makes",
        (all) =>
          (find(all, "Deployment", "lclstream-front").spec.template.spec.volumes.find((v: K8sObject) => v.secret).secret.secretName = "lclstream-certs-fron"),
        /Secret "lclstream-certs-fron" is neither rendered nor written by any pod the rendered RBAC allows/,
      ],
    ];
    for (const [what, breakIt, message] of broken) {
      const all = objectsOf(rendered);
      breakIt(all);
      result = await validate(all.map((o) => stringify(o)).join("---\n"));
      expect({ what, code: result.code }).toEqual({ what, code: 1 });
      expect(result.stdout, what).toMatch(message);
    }
  });

  it("renders an Envoy config that is mesh/envoy.yaml but for its upstream hosts, with mesh/sds/'s files, and passes Envoy's API", async () => {
    const config = find(objects, "ConfigMap", "lclstream-front-envoy").data;
    expect(withoutUpstreamHosts(config["envoy.yaml"])).toEqual(withoutUpstreamHosts(readFileSync(join(root, "mesh", "envoy.yaml"), "utf8")));
    for (const file of ["front-cert.yaml", "mesh-ca.yaml"]) expect(config[file]).toBe(readFileSync(join(root, "mesh", "sds", file), "utf8").trimEnd());
    // The upstreams by their names in the cluster, and the certificates' identities in the trust domain.
    const envoy = parse(config["envoy.yaml"], { maxAliasCount: -1 });
    const buffer = envoy.static_resources.clusters.find((c: K8sObject) => c.name === "buffer");
    expect(buffer.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address).toBe(
      "lclstream-buffer-0.lclstream-buffer.science.svc.cluster.local",
    );
    // Envoy's own API, with the SDS files it reads (mesh/validate).
    const sds = join(dir, "sds");
    await mkdir(sds, { recursive: true });
    await writeFile(join(sds, "front-cert.yaml"), config["front-cert.yaml"]);
    await writeFile(join(sds, "mesh-ca.yaml"), config["mesh-ca.yaml"]);
    await writeFile(join(dir, "envoy.yaml"), config["envoy.yaml"]);
    const { code, stdout } = await run(tool("envoy-validate"), ["--sds", sds, join(dir, "envoy.yaml")]);
    expect(stdout).toMatch(/envoy\.yaml: valid \(3 listeners, 9 clusters/);
    expect(code).toBe(0);
    // The front-tls sidecar is mesh/front-tls.sh, told where things are by the variables it reads.
    const frontTls = container(find(objects, "Deployment", "lclstream-front"), "front-tls");
    expect(frontTls.command).toEqual(["sh", "/opt/lclstream/mesh/front-tls.sh"]);
    const script = readFileSync(join(root, "mesh", "front-tls.sh"), "utf8");
    for (const { name } of frontTls.env.filter((e: K8sObject) => e.name !== "HOME")) expect(script).toContain(`\${${name}:-`);
  });

  describe("its scripts, run as its pods run them", () => {
    let work: string;
    let env: NodeJS.ProcessEnv;
    let api: Server;
    const calls: { method: string; url: string; authorization: string; contentType: string; body: K8sObject }[] = [];
    let buffer: ChildProcess | undefined;

    beforeAll(async () => {
      work = join(dir, "pods");
      // `lclstream` on PATH, as in the image.
      const bin = join(work, "bin");
      await mkdir(bin, { recursive: true });
      await writeFile(join(bin, "lclstream"), `#!/bin/sh\nexec node ${JSON.stringify(join(root, "bin", "lclstream.js"))} "$@"\n`);
      await chmod(join(bin, "lclstream"), 0o755);
      // The chart's scripts as its ConfigMap holds them.
      const scripts = join(work, "scripts");
      await mkdir(scripts, { recursive: true });
      for (const [file, text] of Object.entries(find(objects, "ConfigMap", "lclstream-scripts").data)) await writeFile(join(scripts, file), text as string);
      // A stand-in for the Kubernetes API server, and the service account's files.
      api = createServer((req: IncomingMessage, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          calls.push({
            method: req.method ?? "",
            url: req.url ?? "",
            authorization: req.headers.authorization ?? "",
            contentType: req.headers["content-type"] ?? "",
            body,
          });
          res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify(body));
        });
      });
      await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
      const account = join(work, "serviceaccount");
      await mkdir(account, { recursive: true });
      await writeFile(join(account, "token"), "test-token\n");
      await writeFile(join(account, "namespace"), "science\n");
      env = {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        LCLSTREAM_KUBE_API: `http://127.0.0.1:${(api.address() as AddressInfo).port}`,
        LCLSTREAM_SERVICE_ACCOUNT_DIR: account,
      };
    });
    afterAll(async () => {
      buffer?.kill("SIGTERM");
      await new Promise((resolve) => api.close(resolve));
    });

    /** Runs the CA pod's pki init container's command, with the pod's paths under `work`. */
    async function runPki(): Promise<void> {
      const pki = container(find(objects, "StatefulSet", "lclstream-ca"), "pki");
      const state = join(work, "ca-state");
      const certs = join(work, "pki-certs");
      await mkdir(certs, { recursive: true });
      const podEnv = Object.fromEntries(pki.env.map((e: K8sObject) => [e.name, e.value]));
      const command = (pki.command[2] as string).replaceAll("/etc/lclstream/chart", join(work, "scripts")).replace(/ \/certs$/, ` ${certs}`);
      const { code, stdout, stderr } = await run(pki.command[0], [pki.command[1], command], 60_000, {
        ...env,
        ...podEnv,
        LCLSTREAM_PKI_STATE: state,
        LCLSTREAM_PKI_CERTS: certs,
      });
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).toMatch(/Secret lclstream-certs-buffer: spiffe:\/\/lclstream\.example\.org\/service\/buffer, valid until/);
      // Published and gone: the keys are in the Secrets only.
      expect(await readdir(certs)).toEqual([]);
    }

    it("makes the mesh CA and every certificate under the cluster's names, and publishes each as a Secret the pods mount", async () => {
      await runPki();
      const published = calls.map((c) => c.body.metadata.name).sort();
      const role = find(objects, "Role", "lclstream-pki");
      expect(published).toEqual([...role.rules[1].resourceNames].sort());
      expect(published).toEqual(["admin", "buffer", "front", "jobs", "producer", "request"].map((n) => `lclstream-certs-${n}`));
      for (const call of calls) {
        expect(call.method).toBe("PATCH");
        expect(call.url).toBe(`/api/v1/namespaces/science/secrets/${call.body.metadata.name}?fieldManager=lclstream-pki&force=true`);
        expect(call.authorization).toBe("Bearer test-token");
        expect(call.contentType).toBe("application/apply-patch+yaml");
        expect(call.body).toMatchObject({ apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { namespace: "science" } });
        expect(call.body.metadata.labels).toMatchObject({
          "app.kubernetes.io/instance": "lclstream",
          "lclstream.io/certificate": call.body.metadata.name.replace("lclstream-certs-", ""),
        });
      }
      // Every Secret a pod mounts is one of them.
      const mounted = objects
        .filter((o) => o.spec?.template)
        .flatMap((o) => o.spec.template.spec.volumes ?? [])
        .filter((v: K8sObject) => v.secret)
        .map((v: K8sObject) => v.secret.secretName);
      for (const name of mounted) expect(published).toContain(name);
      // Each certificate names what the others call it by.
      const cert = (name: string) => {
        const secret = calls.find((c) => c.body.metadata.name === `lclstream-certs-${name}`)?.body;
        return new X509Certificate(Buffer.from(secret.data["tls.crt"], "base64"));
      };
      const request = container(find(objects, "StatefulSet", "lclstream-request"), "request").args as string[];
      const bufferCert = cert("buffer");
      expect(bufferCert.subjectAltName).toContain("URI:spiffe://lclstream.example.org/service/buffer");
      for (const url of flagValues(request, "--buffer-url")) expect(bufferCert.checkHost(new URL(url).hostname)).toBe(new URL(url).hostname);
      expect(bufferCert.checkHost("lclstream-buffer-2.lclstream-buffer.science.svc.cluster.local")).toBeDefined();
      const jobsHost = new URL(flagValues(request, "--jobs-url")[0]!).hostname;
      expect(cert("jobs").checkHost(jobsHost)).toBe(jobsHost);
      // localhost, for each pod's own health probe.
      for (const name of ["jobs", "producer", "request", "buffer"]) expect(cert(name).checkHost("localhost")).toBe("localhost");
      expect(cert("front").checkHost("lclstream.example.org")).toBe("lclstream.example.org");
      expect(cert("front").subjectAltName).toContain("URI:spiffe://lclstream.example.org/service/front");
      expect(cert("admin").subjectAltName).toContain("URI:spiffe://lclstream.example.org/user/admin");

      // The refresh: fresh certificates, and no second admin.
      calls.length = 0;
      await runPki();
      expect(calls.map((c) => c.body.metadata.name).sort()).toEqual(["buffer", "front", "jobs", "producer", "request"].map((n) => `lclstream-certs-${n}`));
    });

    it("starts a buffer as its pod does: takes its certificate, serves, answers the kubelet's probe, and its metrics reach the pod's address", async () => {
      const set = find(objects, "StatefulSet", "lclstream-buffer");
      // The Secret as the kubelet mounts it, and take-certs as the init container runs it.
      const secret = calls.find((c) => c.body.metadata.name === "lclstream-certs-buffer")?.body;
      const secrets = join(work, "secrets");
      const certs = join(work, "certs");
      await mkdir(join(secrets, "buffer"), { recursive: true });
      for (const [file, data] of Object.entries(secret.data)) await writeFile(join(secrets, "buffer", file), Buffer.from(data as string, "base64"));
      const take = container(set, "take-certs");
      const taken = await run(take.command[0], [join(work, "scripts", "take-certs.mjs"), ...take.args], 30_000, {
        ...env,
        LCLSTREAM_SECRETS_ROOT: secrets,
        LCLSTREAM_CERTS_ROOT: certs,
      });
      expect(taken.code).toBe(0);
      expect(taken.stdout).toMatch(/buffer: took the certificate/);
      expect((await stat(join(certs, "buffer", "tls.key"))).mode & 0o777).toBe(0o600);
      // Again (a restarted pod): the copy stays.
      expect(
        (
          await run(take.command[0], [join(work, "scripts", "take-certs.mjs"), ...take.args], 30_000, {
            ...env,
            LCLSTREAM_SECRETS_ROOT: secrets,
            LCLSTREAM_CERTS_ROOT: certs,
          })
        ).stdout,
      ).toMatch(/buffer: keeping/);

      // The buffer with the pod's arguments, on this machine's ports (the CA is not running here).
      // The pod's address is 127.0.0.2 here: the rendered 0.0.0.0 would bind every address of this
      // machine, and the test keeps to loopback.
      const server = container(set, "buffer");
      expect(flagValues(server.args, "--metrics-host")).toEqual(["0.0.0.0"]);
      const podAddress = "127.0.0.2";
      const port = await freePort();
      const metricsPort = await freePort(podAddress);
      const args = (server.args as string[]).map((a, i, all) => {
        if (all[i - 1] === "--port") return String(port);
        if (all[i - 1] === "--metrics-port") return String(metricsPort);
        if (all[i - 1] === "--metrics-host") return podAddress;
        if (all[i - 1] === "--host") return "127.0.0.1";
        if (a === "/state") return join(work, "buffer-state");
        return a.replace(/^\/certs\//, `${certs}/`);
      });
      const caUrl = args.indexOf("--ca-url");
      args.splice(caUrl, 2);
      buffer = spawn("lclstream", args, { env, stdio: ["ignore", "pipe", "pipe"] });
      await new Promise<void>((resolve, reject) => {
        let out = "";
        buffer?.stdout?.on("data", (c) => {
          out += c;
          if (out.includes("(mTLS)")) resolve();
        });
        buffer?.on("exit", (code) => reject(new Error(`the buffer exited (${code}): ${out}`)));
      });

      // The readiness probe's command, as the kubelet runs it in the container.
      const probe = (server.readinessProbe.exec.command as string[]).map((a) =>
        a.replace("https://localhost:8443", `https://localhost:${port}`).replace(/^\/certs\//, `${certs}/`),
      );
      const health = await run(probe[0]!, probe.slice(1), 30_000, env);
      expect({ code: health.code, stdout: health.stdout.trim() }).toEqual({ code: 0, stdout: "SERVING" });

      // The metrics, from the buffer itself on the pod's address and the port Prometheus is told
      // (the prometheus.io/port annotation, the container port named metrics).
      expect(set.spec.template.metadata.annotations["prometheus.io/port"]).toBe(flagValues(server.args, "--metrics-port")[0]);
      const response = await fetch(`http://${podAddress}:${metricsPort}${set.spec.template.metadata.annotations["prometheus.io/path"]}`);
      expect(response.status).toBe(200);
      const metrics = await response.text();
      expect(metrics).toMatch(/^# HELP /m);
      expect(metrics).toMatch(/^# TYPE lclstream_\w+ /m);
    });
  });
});
