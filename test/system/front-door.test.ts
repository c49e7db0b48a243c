/**
 * The front door, live: mesh/haproxy.cfg (the stand-in for mesh/envoy.yaml,
 * with the same routes, mTLS, enrollment port and identity forwarding) on a
 * real HAProxy in front of the real mesh, taking a new CRL and its own renewed
 * certificate through the runtime API with no restart; and mesh/envoy.yaml
 * with the SDS files it reads those from (mesh/sds/) checked by its validator
 * against Envoy's API.
 */
import { X509Certificate } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as http2Connect, type ClientHttp2Session } from "node:http2";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium } from "playwright-core";
import { Code, createClient, createContextValues } from "@connectrpc/connect";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { JobQueueService } from "../../gen/lclstream/jobs/v1/jobs_pb.js";
import { DataRequestService, DataRequest_State as State } from "../../gen/lclstream/request/v1/request_pb.js";
import { enroll } from "../../services/ca/enroll-client.js";
import { issueOffline } from "../../services/ca/offline.js";
import { createMeshTransport, publishedBatches } from "../../services/common/client.js";
import { nativeStreamModule } from "../../services/common/native-stream.js";
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { consume, publishMessages } from "../helpers/buffer.js";
import { CertificateKeeper } from "../../services/common/renewal.js";
import { createCertificateAuthority, issueMaterial, readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { fetchRequest } from "../../services/cli/fetch.js";
import { renewFrontCertificate, runtimeApi, startHaproxyFront, type HaproxyFront } from "../helpers/haproxy-front.js";
import { freePort } from "../helpers/ports.js";
import { startLocalMesh, localTrustDomain, type LocalMesh } from "../../services/cli/local-mesh.js";
import { failure } from "../helpers/errors.js";
import { debianTool, run, tool } from "../helpers/tools.js";
import { internalConfig } from "../helpers/producer-config.js";

const meshDir = fileURLToPath(new URL("../../mesh", import.meta.url));
const producer = (events: number, pacing: { rateHz?: number; paced?: boolean } = {}) =>
  internalConfig(
    events,
    { det: { type: "SyntheticAreaDetector", geometry: "small" }, ts: { type: "SyntheticTimestamp" } },
    { seed: 3, ...pacing, steps: [{ type: "PeakFinder", data_source: "det" }] },
  );

/** Serial numbers as hex, compared whatever their case or leading zeros. */
const hex = (serial: string) => serial.toUpperCase().replace(/^0+/, "");

/** The serial of the certificate a new TLS connection to `url` is given. */
function servedSerial(url: string, tls: CertMaterial): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: hostname, port: Number(port), ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, ALPNProtocols: ["h2"] }, () => {
      resolve(hex(socket.getPeerCertificate().serialNumber));
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

/** grpc.health.v1.Health/Check on an HTTP/2 connection of one's own; resolves with the grpc-status. */
function healthCheck(session: ClientHttp2Session): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    stream.on("response", (headers) => (status = (headers["grpc-status"] as string | undefined) ?? status));
    stream.on("trailers", (trailers) => (status = trailers["grpc-status"] as string));
    stream.on("data", () => {});
    stream.on("end", () => resolve(status));
    stream.on("error", reject);
    // An empty HealthCheckRequest in its gRPC frame.
    stream.end(Buffer.alloc(5));
  });
}

describe("the front door: HAProxy in front of the whole mesh", () => {
  let dir: string;
  let mesh: LocalMesh;
  let haproxy: HaproxyFront;
  let front: string;
  let enrollFront: string;
  let socket: string;
  let crlFile: string;
  let me: CertMaterial;
  let mallory: CertMaterial;
  const requestsAs = (tls: CertMaterial | { caPem: string }) => createClient(DataRequestService, createMeshTransport({ baseUrl: front, tls }));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-front-"));
    const [frontPort, enrollPort] = [await freePort(), await freePort()];
    front = `https://127.0.0.1:${frontPort}`;
    enrollFront = `https://127.0.0.1:${enrollPort}`;
    // Short idle timeouts, and heartbeats well inside them.
    mesh = await startLocalMesh({ stateDir: join(dir, "state"), logLevel: "silent", heartbeatMs: 300, front: { url: front } });
    me = await readCertDir(mesh.endpoints.certDir);
    mallory = await issueOffline(join(dir, "state"), { identity: "user/mallory" });

    const started = await startHaproxyFront({ mesh, stateDir: join(dir, "state"), dir, frontPort, enrollPort, idleTimeout: "1s" });
    ({ socket, crlFile } = started);
    haproxy = started;
  }, 60_000);
  afterAll(async () => {
    // The proxy and its connections go first, then the mesh; a close that hangs is reported, not waited for.
    await haproxy?.close();
    const closed = await Promise.race([mesh?.close().then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 30_000))]);
    await rm(dir, { recursive: true, force: true });
    expect(closed, "the mesh closed within 30 s").toBe(true);
  }, 60_000);

  it("carries a whole data request, consumers included, through the front door only", async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({
      dataRequest: { parallelism: 2, producer: producer(40), consumerGroups: [{ name: "analysis" }, { name: "archive" }] },
    });
    const name = dataRequest!.name;
    const transportFor = (url: string) => {
      // The request tells consumers to reach the buffer through the front door.
      expect(url).toBe(front);
      return createMeshTransport({ baseUrl: url, tls: me });
    };
    const results = await Promise.all(
      ["analysis", "archive"].map((group) => fetchRequest({ requests: requestsAs(me), transportFor, name, group, signal: new AbortController().signal })),
    );
    for (const got of results) expect(got.totals).toMatchObject({ eventCount: 40n, batchCount: 10n });
    await expect.poll(async () => (await requestsAs(me).getDataRequest({ name })).dataRequest!.state, { timeout: 20_000 }).toBe(State.SUCCEEDED);
  });

  it.skipIf(process.env.LCLSTREAM_NATIVE === "0")("carries a Publish sent by the native module through the front, its refusals included", async () => {
    expect(nativeStreamModule(), "the native module is built").toBeDefined();
    const buffer = createClient(BufferService, createMeshTransport({ baseUrl: front, tls: me }));
    const carrying = { contextValues: createContextValues().set(publishedBatches, true) };
    const { stream, publishToken } = await buffer.createStream({ stream: {} });
    const published = await buffer.publish(publishMessages(stream!.name, publishToken, 0, 0, 20, { payloadBytes: 256 * 1024, done: true }), carrying);
    expect(published.acceptedBatches).toBe(20n);
    expect((await consume(buffer, stream!.name, "default")).end).toMatchObject({ batchCount: 20n });
    expect(await failure(buffer.publish(publishMessages(stream!.name, "lclsp1.wrong", 0, 0, 5), carrying))).toMatchObject({
      code: Code.PermissionDenied,
      reason: "PUBLISH_TOKEN_REFUSED",
    });
  });

  it("serves the viewer page to a browser with a client certificate, which watches requests with gRPC-Web", async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(8) } });
    const browser = await chromium.launch({ executablePath: debianTool("chromium"), headless: true, args: ["--no-sandbox"] });
    try {
      // The mesh CA is not the browser's: the page is trusted by its origin's certificate only in this test.
      const withCert = await browser.newContext({
        ignoreHTTPSErrors: true,
        clientCertificates: [{ origin: front, cert: Buffer.from(me.certPem), key: Buffer.from(me.keyPem) }],
      });
      const page = await withCert.newPage();
      await page.goto(`${front}/viewer/`);
      await page.waitForFunction(() => document.getElementById("state")?.textContent?.startsWith("dataRequests/"), undefined, { timeout: 20_000 });
      expect(await page.locator("#request option").allTextContents()).toContainEqual(expect.stringContaining(dataRequest!.name.replace("dataRequests/", "")));
      const anonymous = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
      await expect(anonymous.goto(`${front}/viewer/`)).rejects.toThrow();
    } finally {
      await browser.close();
    }
  }, 60_000);

  it("keeps a paused data stream open past the proxy's idle timeouts while its request is alive", async () => {
    // A batch every 2.5 s through a proxy that cuts streams silent for 1 s: the buffer's heartbeats keep it open.
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { batchSize: 1, producer: producer(3, { rateHz: 0.4, paced: true }) } });
    const transportFor = (url: string) => createMeshTransport({ baseUrl: url, tls: me });
    const got = await fetchRequest({ requests: requestsAs(me), transportFor, name: dataRequest!.name, signal: new AbortController().signal });
    expect(got.totals).toMatchObject({ eventCount: 3n, batchCount: 3n });
    expect(got.progress.seconds).toBeGreaterThan(2);
  });

  it("answers lclstream_api's REST calls over HTTP/1.1 from curl and Python requests, as the certificate's identity", async () => {
    const certs = mesh.endpoints.certDir;
    const body = fileURLToPath(new URL("../fixtures/lclstream_api/param2.json", import.meta.url));
    const curl = (...args: string[]) =>
      run("curl", ["-sS", "--http1.1", "--cacert", join(certs, "ca.crt"), "--cert", join(certs, "tls.crt"), "--key", join(certs, "tls.key"), ...args]);
    // POST lclstream_api's own test body, with the seed's `user` parameter, which is ignored.
    const posted = await curl("-D", "-", "-H", "content-type: application/json", "--data-binary", `@${body}`, `${front}/v1/transfers?user=bob`);
    const [head, json] = posted.stdout.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head).toMatch(/warning: 299 lclstream "the user query parameter is ignored/i);
    const status = JSON.parse(json!);
    expect(Object.keys(status)).toEqual(["time", "jobndx", "state", "info", "id", "url", "user"]);
    expect(status.user).toMatch(/\/user\//);
    expect(status.url).toMatch(new RegExp(`^${front}/streams/`));
    expect(["new", "queued", "active"]).toContain(status.state);

    const script = `
import json, sys, requests
base, certs, tid = sys.argv[1], sys.argv[2], sys.argv[3]
class Mtls(requests.Session):
    # Per request: REQUESTS_CA_BUNDLE in the environment would override a session's verify.
    def request(self, *args, **kwargs):
        return super().request(*args, verify=certs + "/ca.crt", cert=(certs + "/tls.crt", certs + "/tls.key"), **kwargs)
s = Mtls()
listed = s.get(base + "/v1/transfers", params={"limit": 5})
one = s.get(base + "/v1/transfers/" + tid)
bad_state = s.get(base + "/v1/transfers", params={"state": "running"})
deleted = s.delete(base + "/v1/transfers/" + tid)
missing = s.get(base + "/v1/transfers/nosuchtransfer")
invalid = s.post(base + "/v1/transfers", json={"abc": 2})
print(json.dumps({"listed": [listed.status_code, listed.json()], "one": [one.status_code, one.json()],
  "bad_state": bad_state.status_code, "deleted": [deleted.status_code, deleted.json()],
  "missing": [missing.status_code, missing.json()], "invalid": [invalid.status_code, invalid.json()],
  "http": listed.raw.version}))
`;
    const ran = await run("python3", ["-c", script, front, certs, String(status.id)]);
    expect(ran.stderr).toBe("");
    const py = JSON.parse(ran.stdout);
    expect(py.http).toBe(11);
    expect(py.listed[0]).toBe(200);
    expect(py.listed[1][0]).toMatchObject({ id: status.id, url: status.url, user: status.user });
    expect(py.one[0]).toBe(200);
    expect(py.one[1]).toMatchObject({ id: status.id, user: status.user, metrics: { producers: 1 } });
    expect(py.one[1].log[0]).toMatchObject({ client: "cache", state: "new", info: "ok", jobndx: 0 });
    expect(py.bad_state).toBe(422);
    expect(py.deleted).toEqual([200, null]);
    expect(py.missing[0]).toBe(404);
    expect(py.missing[1].detail).toContain("no data request dataRequests/nosuchtransfer of yours");
    expect(py.invalid[0]).toBe(422);
    expect(JSON.stringify(py.invalid[1].detail)).toContain("abc");
    await expect.poll(async () => JSON.parse((await curl(`${front}/v1/transfers/${status.id}`)).stdout).state, { timeout: 20_000 }).toBe("canceled");
    // Bad input: FastAPI's answers, saying what was wrong.
    const answer = async (...args: string[]) => {
      const r = await curl("-w", "\n%{http_code}", ...args);
      const at = r.stdout.lastIndexOf("\n");
      return { status: Number(r.stdout.slice(at + 1)), body: JSON.parse(r.stdout.slice(0, at)) };
    };
    const notJson = await answer("-H", "content-type: application/json", "--data", "{not json", `${front}/v1/transfers`);
    expect(notJson).toMatchObject({ status: 422, body: { detail: [{ loc: ["body"], type: "json_invalid" }] } });
    expect(await answer("-X", "PUT", `${front}/v1/transfers/${status.id}`)).toEqual({ status: 405, body: { detail: "Method Not Allowed" } });
    expect(await answer(`${front}/v1/transfers?limit=ten`)).toMatchObject({
      status: 422,
      body: { detail: [{ loc: ["query", "limit"], type: "int_parsing" }] },
    });
    await writeFile(join(dir, "huge.json"), `{"x": "${"a".repeat(1024 * 1024)}"}`);
    expect(await answer("-H", "content-type: application/json", "--data-binary", `@${join(dir, "huge.json")}`, `${front}/v1/transfers`)).toEqual({
      status: 413,
      body: { detail: "the config is larger than 1048576 bytes" },
    });
    // The Connect protocol over HTTP/1.1 through the front door: answers, and errors as Connect's JSON.
    const connect = (method: string, body: string) =>
      curl(
        "-H",
        "content-type: application/json",
        "-H",
        "connect-protocol-version: 1",
        "--data",
        body,
        `${front}/lclstream.request.v1.DataRequestService/${method}`,
      );
    const listed = JSON.parse((await connect("ListDataRequests", "{}")).stdout);
    expect(listed.dataRequests.map((r: { name: string }) => r.name)).toContain(`dataRequests/${status.id}`);
    const refused = JSON.parse((await connect("GetDataRequest", '{"name":"not a name"}')).stdout);
    expect(refused).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("is not a data request name") });
    // gRPC itself stays HTTP/2: over HTTP/1.1 the request service says so.
    const grpc = await curl(
      "-H",
      "content-type: application/grpc",
      "--data-binary",
      "",
      "-w",
      "\n%{http_code}",
      `${mesh.endpoints.request}/lclstream.request.v1.DataRequestService/ListDataRequests`,
    );
    expect(grpc.stdout).toBe("gRPC needs HTTP/2: use an HTTP/2 client, or the Connect protocol or REST over HTTP/1.1\n\n505");
    // Another user sees none of it.
    await writeFile(join(dir, "mallory.crt"), mallory.certPem);
    await writeFile(join(dir, "mallory.key"), mallory.keyPem);
    const asMallory = async (path: string) =>
      JSON.parse(
        (
          await run("curl", [
            "-sS",
            "--cacert",
            join(certs, "ca.crt"),
            "--cert",
            join(dir, "mallory.crt"),
            "--key",
            join(dir, "mallory.key"),
            `${front}${path}`,
          ])
        ).stdout,
      );
    expect(await asMallory("/v1/transfers")).toEqual([]);
    expect((await asMallory(`/v1/transfers/${status.id}`)).detail).toContain("of yours");
  });

  it("refuses at the front a client without a certificate, or with another CA's", async () => {
    const anonymous = await failure(requestsAs({ caPem: me.caPem }).listDataRequests({}));
    // The TLS handshake fails at the proxy, with the alert saying why.
    expect(anonymous.message).toMatch(/alert certificate required/);
    const otherCa = await createCertificateAuthority({ trustDomain: localTrustDomain });
    const stranger = { ...(await issueMaterial(otherCa, { identity: `spiffe://${localTrustDomain}/user/${"stranger"}` })), caPem: me.caPem };
    const refused = await failure(requestsAs(stranger).listDataRequests({}));
    expect(refused.message).toMatch(/alert unknown ca/);
  });

  it("refuses a revoked certificate at the front once it has the new revocation list", async () => {
    const revoked = await issueOffline(join(dir, "state"), { identity: "user/trudy" });
    expect((await requestsAs(revoked).listDataRequests({})).dataRequests).toEqual([]);
    const ca = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: front, tls: me }));
    const serial = new X509Certificate(revoked.certPem).serialNumber;
    await ca.revoke({ serialNumber: serial });
    // What an operator's CRL refresh does: the new list through the runtime API, no restart.
    const crl = (await ca.getRevocationList({})).crlPem.trim();
    expect(await runtimeApi(socket, `set ssl crl-file ${crlFile} <<\n${crl}\n`)).toMatch(/transaction created/i);
    expect(await runtimeApi(socket, `commit ssl crl-file ${crlFile}`)).toMatch(/Success/);
    const refused = await failure(requestsAs(revoked).listDataRequests({}));
    expect(refused.message).toMatch(/alert certificate revoked/);
  });

  it("takes its renewed certificate through the runtime API with no restart: new connections get it, open ones and their streams go on", async () => {
    // A front of its own, which no CRL was committed to: HAProxy 2.6 (Debian 12's) leaves the
    // mTLS listener out of a certificate commit made after a CRL commit, and crashes at the
    // next CRL commit (haproxy/haproxy#3165; mesh/README.md says what to do there).
    const renewing = join(dir, "renewing");
    await mkdir(renewing);
    const own = await startHaproxyFront({ mesh, stateDir: join(dir, "state"), dir: renewing, frontPort: await freePort(), enrollPort: await freePort() });
    const showInfoPid = async () => /^Pid: (\d+)$/m.exec(await runtimeApi(own.socket, "show info"))?.[1];
    const pid = await showInfoPid();
    expect(pid).toBe(String(own.process.pid));
    const current = await readCertDir(join(dir, "state", "certs", "front"));
    const oldSerial = hex(new X509Certificate(current.certPem).serialNumber);
    expect(await servedSerial(own.url, me)).toBe(oldSerial);

    // Open before the renewal: an HTTP/2 connection that keeps making calls, and a paced data stream.
    const session = http2Connect(own.url, { ca: me.caPem, cert: me.certPem, key: me.keyPem });
    let calling = true;
    let calls: Promise<(string | undefined)[]> = Promise.resolve([]);
    try {
      await new Promise((resolve, reject) => session.once("connect", resolve).once("error", reject));
      expect(hex((session.socket as TLSSocket).getPeerCertificate().serialNumber)).toBe(oldSerial);
      calls = (async () => {
        const statuses: (string | undefined)[] = [];
        while (calling) {
          statuses.push(await healthCheck(session));
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        return statuses;
      })();
      const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: own.url, tls: me }));
      const { dataRequest } = await requests.createDataRequest({ dataRequest: { batchSize: 1, producer: producer(4, { rateHz: 2, paced: true }) } });
      let firstBatch!: () => void;
      const streaming = new Promise<void>((resolve) => (firstBatch = resolve));
      const fetched = fetchRequest({
        requests,
        // Through this front, not the one the request names.
        transportFor: () => createMeshTransport({ baseUrl: own.url, tls: me }),
        name: dataRequest!.name,
        onProgress: (p) => p.batches > 0 && firstBatch(),
        signal: new AbortController().signal,
      });
      await streaming;

      // The front's renewal, as every service renews with the CA: a new key pair and serial, the same identity.
      const renewed = await new CertificateKeeper({ material: current, caUrl: mesh.endpoints.ca }).renew();
      const newSerial = hex(new X509Certificate(renewed.certPem).serialNumber);
      expect(newSerial).not.toBe(oldSerial);
      const answers = await renewFrontCertificate(own, renewed);
      expect(answers.set).toMatch(/transaction created/i);
      expect(answers.commit).toMatch(/Success/);

      // A new connection is given the new certificate, on both listeners; HAProxy holds it for its server lines too.
      expect(await servedSerial(own.url, me)).toBe(newSerial);
      expect(await servedSerial(own.enrollUrl, me)).toBe(newSerial);
      expect(await runtimeApi(own.socket, `show ssl cert ${own.frontPem}`)).toMatch(new RegExp(`^Serial: 0*${newSerial}$`, "im"));
      expect((await requests.listDataRequests({})).dataRequests.length).toBeGreaterThan(0);
      // The open connection keeps the certificate it began with and answered every call; the stream ends complete.
      calling = false;
      const statuses = await calls;
      expect(statuses.length).toBeGreaterThan(1);
      expect(statuses.every((status) => status === "0")).toBe(true);
      expect(hex((session.socket as TLSSocket).getPeerCertificate().serialNumber)).toBe(oldSerial);
      expect((await fetched).totals).toMatchObject({ eventCount: 4n, batchCount: 4n });
      // No restart: the same process, still running.
      expect(own.process.exitCode).toBeNull();
      expect(await showInfoPid()).toBe(pid);
    } finally {
      calling = false;
      session.destroy();
      await calls.catch(() => undefined);
      await own.close();
    }
  });

  it("forwards the identity it verified, not one a client claims in its own x-forwarded-client-cert", async () => {
    const { dataRequest } = await requestsAs(me).createDataRequest({ dataRequest: { producer: producer(4) } });
    const forged = { headers: { "x-forwarded-client-cert": `By=spiffe://${localTrustDomain}/service/front;URI=${mesh.endpoints.user}` } };
    const mine = await requestsAs(mallory).listDataRequests({}, forged);
    expect(mine.dataRequests).toEqual([]);
    expect(await failure(requestsAs(mallory).getDataRequest({ name: dataRequest!.name }, forged))).toMatchObject({
      code: Code.NotFound,
      reason: "REQUEST_NOT_FOUND",
    });
    await requestsAs(me).cancelDataRequest({ name: dataRequest!.name });
  });

  it("lets only admins reach the job queue through the front", async () => {
    const jobsAs = (tls: CertMaterial) => createClient(JobQueueService, createMeshTransport({ baseUrl: front, tls }));
    const denied = await failure(jobsAs(mallory).listJobs({}));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.message).toContain("only admins may call this service through the front door");
    expect((await jobsAs(me).listJobs({})).jobs.length).toBeGreaterThan(0);
  });

  it("serves GetTrustBundle and Enroll on the enrollment port, and nothing else", async () => {
    const anonymous = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: enrollFront, tls: { caPem: me.caPem } }));
    expect((await anonymous.getTrustBundle({})).caCertificatesPem.map((pem) => pem.trim())).toContain(me.caPem.trim());
    const ca = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: front, tls: me }));
    const { secret } = await ca.createEnrollmentToken({ identity: "user/newcomer" });
    const material = await enroll({ enrollUrl: enrollFront, token: secret });
    expect((await requestsAs(material).listDataRequests({})).dataRequests).toEqual([]);
    for (const call of [anonymous.listCertificates({}), anonymous.createEnrollmentToken({ identity: "user/x" })]) {
      const refused = await failure(call);
      expect(refused.code).toBe(Code.PermissionDenied);
      expect(refused.message).toContain("only GetTrustBundle and Enroll are served on the enrollment port");
    }
    const other = await failure(createClient(DataRequestService, createMeshTransport({ baseUrl: enrollFront, tls: { caPem: me.caPem } })).listDataRequests({}));
    expect(other.code).toBe(Code.PermissionDenied);
  });
});

describe("mesh/envoy.yaml and its SDS files against Envoy's API", () => {
  const validate = (...args: string[]) => run(tool("envoy-validate"), args);
  const sdsDir = join(meshDir, "sds");

  it("passes the validator, with the SDS files it reads its secrets from", async () => {
    const { code, stdout } = await validate("--sds", sdsDir, join(meshDir, "envoy.yaml"));
    expect(stdout).toMatch(/front-cert\.yaml: valid \(secret "front_cert": tls_certificate\)/);
    expect(stdout).toMatch(/mesh-ca\.yaml: valid \(secret "mesh_ca": validation_context\)/);
    expect(stdout).toMatch(/envoy\.yaml: valid \(3 listeners, 9 clusters, 15 routes, 2 secrets by SDS \(front_cert, mesh_ca\) in 18 places\)/);
    expect(code).toBe(0);
    // No certificate, key, CA or CRL is read from a file named in envoy.yaml itself (Envoy would never reload it).
    expect(await readFile(join(meshDir, "envoy.yaml"), "utf8")).not.toMatch(/filename:|tls_certificates:|\bvalidation_context:/);
  });

  it("fails a copy with an unknown field, a route to a missing cluster, an unknown type or a bad value", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-envoy-"));
    try {
      const original = await readFile(join(meshDir, "envoy.yaml"), "utf8");
      const broken = {
        "unknown-field.yaml": original.replace("stream_idle_timeout: 300s", "stream_idle_timout: 300s"),
        "missing-cluster.yaml": original.replace("route: { cluster: buffer, timeout: 0s }", "route: { cluster: bufer, timeout: 0s }"),
        "unknown-type.yaml": original.replace("grpc_web.v3.GrpcWeb", "grpc_web.v3.GrpcWebb"),
        "bad-port.yaml": original.replace("port_value: 8444 }", "port_value: 84444 }"),
        "plaintext-cluster.yaml": original.replace(/(- name: jobs\n(?:.*\n)*?) {6}transport_socket:\n(?: {8}.*\n)+/, "$1"),
      };
      for (const [file, text] of Object.entries(broken)) {
        expect(text, file).not.toBe(original);
        await writeFile(join(dir, file), text);
      }
      await copyFile(join(meshDir, "envoy.yaml"), join(dir, "envoy.yaml"));
      const { code, stdout } = await validate("--sds", sdsDir, ...Object.keys(broken).map((f) => join(dir, f)), join(dir, "envoy.yaml"));
      expect(code).toBe(1);
      expect(stdout).toMatch(/unknown-field\.yaml: INVALID\n.*unknown field "stream_idle_timout"/);
      expect(stdout).toMatch(/missing-cluster\.yaml: INVALID\n.*points at cluster "bufer", which is not defined/);
      expect(stdout).toMatch(
        /unknown-type\.yaml: INVALID\n.*unable to resolve "type\.googleapis\.com\/envoy\.extensions\.filters\.http\.grpc_web\.v3\.GrpcWebb"/,
      );
      expect(stdout).toMatch(/bad-port\.yaml: INVALID\n.*PortValue: value must be less than or equal to 65535/);
      expect(stdout).toMatch(/plaintext-cluster\.yaml: INVALID\n.*cluster "jobs" leaves the host without TLS/);
      expect(stdout).toMatch(/envoy\.yaml: valid/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fails a secret asked for by a name its SDS file does not hold, and SDS files Envoy would reject", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lclstream-envoy-sds-"));
    try {
      const original = await readFile(join(meshDir, "envoy.yaml"), "utf8");
      const wrongName = original.replace("name: front_cert", "name: front_certificate");
      expect(wrongName).not.toBe(original);
      await writeFile(join(dir, "wrong-secret-name.yaml"), wrongName);
      const named = await validate("--sds", sdsDir, join(dir, "wrong-secret-name.yaml"), join(meshDir, "envoy.yaml"));
      expect(named.code).toBe(1);
      expect(named.stdout).toMatch(
        /wrong-secret-name\.yaml: INVALID\n {2}- secret "front_certificate" is read from .*front-cert\.yaml, whose secret is named "front_cert": Envoy would reject it\n(?! {2}-)/,
      );
      expect(named.stdout).toMatch(/\/envoy\.yaml: valid/);

      // SDS files with a misspelt field, and a CRL outside the directory watched for it.
      const brokenSds = join(dir, "sds");
      await mkdir(brokenSds);
      const cert = await readFile(join(sdsDir, "front-cert.yaml"), "utf8");
      const ca = await readFile(join(sdsDir, "mesh-ca.yaml"), "utf8");
      await writeFile(join(brokenSds, "front-cert.yaml"), cert.replace("private_key:", "private_kee:"));
      await writeFile(join(brokenSds, "mesh-ca.yaml"), ca.replace(/crl: \{ filename: \S+ \}/, "crl: { filename: /etc/lclstream/crl/ca.crl }"));
      const files = await validate("--sds", brokenSds, join(meshDir, "envoy.yaml"));
      expect(files.code).toBe(1);
      expect(files.stdout).toMatch(/front-cert\.yaml: INVALID\n.*unknown field "private_kee"/);
      expect(files.stdout).toMatch(/mesh-ca\.yaml: INVALID\n.*crl \/etc\/lclstream\/crl\/ca\.crl is not under its watched_directory \/etc\/lclstream\/front/);
      expect(files.stdout).toMatch(
        /envoy\.yaml: INVALID\n.*secret "front_cert" is read from \/etc\/envoy\/sds\/front-cert\.yaml, but .* has no valid file front-cert\.yaml/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
