/**
 * The front door on HAProxy (mesh/haproxy.cfg, the stand-in for Envoy) in
 * front of a local mesh started with `front: { url }`: its certificate, the
 * mesh CA and CRL, the admins, and the service addresses, as the config's
 * environment. Used by the system tests and the benchmark.
 */
import { createConnection } from "node:net";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { CertificateAuthorityService } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createMeshTransport } from "../../services/common/client.js";
import { packageInfo } from "../../services/common/package-info.js";
import { readCertDir, type CertMaterial } from "../../services/common/pki.js";
import { localTrustDomain, type LocalMesh } from "../../services/cli/local-mesh.js";

const meshDir = join(packageInfo().root, "mesh");

/** A running HAProxy front. */
export interface HaproxyFront {
  /** `https://127.0.0.1:PORT`, the mTLS front. */
  url: string;
  /** The enrollment port's URL. */
  enrollUrl: string;
  /** HAProxy's runtime API socket. */
  socket: string;
  /** The CRL file HAProxy reads (update it through the runtime API). */
  crlFile: string;
  /** The front's certificate and key, one PEM, on both listeners and every server line (update it with {@link renewFrontCertificate}). */
  frontPem: string;
  process: ChildProcess;
  /** What HAProxy printed. */
  log(): string;
  /** Kills it and waits for it to exit. */
  close(): Promise<void>;
}

/** The front's certificate and key as HAProxy takes them: one PEM. */
function pemOf(material: Pick<CertMaterial, "certPem" | "keyPem">): string {
  return `${material.certPem.trim()}\n${material.keyPem.trim()}\n`;
}

/** One command on HAProxy's runtime API socket; resolves with its answer. */
export function runtimeApi(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = "";
    const connection = createConnection(socket, () => connection.end(`${command}\n`));
    connection.on("data", (d) => (answer += d.toString()));
    connection.on("end", () => resolve(answer));
    connection.on("error", reject);
  });
}

/**
 * Puts a renewed certificate for the front in place with no restart, as an
 * operator's renewal does: front.pem is replaced (a restart reads the new
 * one), and HAProxy takes it through the runtime API, `set ssl cert` opening
 * a transaction with the new PEM and `commit ssl cert` swapping it in on both
 * listeners and every server line that name the file. New connections get
 * the new certificate; open ones keep theirs. Resolves with the answers.
 */
export async function renewFrontCertificate(front: HaproxyFront, material: Pick<CertMaterial, "certPem" | "keyPem">) {
  const pem = pemOf(material);
  await writeFile(`${front.frontPem}.new`, pem, { mode: 0o600 });
  await rename(`${front.frontPem}.new`, front.frontPem);
  const set = await runtimeApi(front.socket, `set ssl cert ${front.frontPem} <<\n${pem}`);
  const commit = await runtimeApi(front.socket, `commit ssl cert ${front.frontPem}`);
  return { set, commit };
}

/** Where the haproxy binary is: on PATH, or in the sbin directories a user's PATH may lack. */
export function haproxyBinary(): string | undefined {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin"]) {
    if (dir && existsSync(join(dir, "haproxy"))) return join(dir, "haproxy");
  }
  return undefined;
}

/**
 * Starts HAProxy on `frontPort` and `enrollPort` in front of `mesh` (started
 * with `front: { url: https://127.0.0.1:frontPort }`), files in `dir`; resolves
 * once a call goes through it.
 */
export async function startHaproxyFront(o: {
  mesh: LocalMesh;
  stateDir: string;
  dir: string;
  frontPort: number;
  enrollPort: number;
  idleTimeout?: string;
}): Promise<HaproxyFront> {
  const binary = haproxyBinary();
  if (!binary) throw new Error("haproxy is not installed: run scripts/install-system-deps.sh");
  const { mesh, dir } = o;
  const me = await readCertDir(mesh.endpoints.certDir);
  const proxy = await readCertDir(join(o.stateDir, "certs", "front"));
  const ca = createClient(CertificateAuthorityService, createMeshTransport({ baseUrl: mesh.endpoints.ca, tls: me }));
  const crlFile = join(dir, "ca.crl");
  await writeFile(crlFile, (await ca.getRevocationList({})).crlPem);
  const frontPem = join(dir, "front.pem");
  await writeFile(frontPem, pemOf(proxy));
  await writeFile(join(dir, "ca.crt"), me.caPem);
  await writeFile(join(dir, "admins"), `${mesh.endpoints.user}\n`);
  const socket = join(dir, "haproxy.sock");
  const address = (url: string) => new URL(url).host;
  const child = spawn(binary, ["-db", "-f", join(meshDir, "haproxy.cfg")], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      LCLSTREAM_FRONT_ADDR: `127.0.0.1:${o.frontPort}`,
      LCLSTREAM_ENROLL_ADDR: `127.0.0.1:${o.enrollPort}`,
      LCLSTREAM_FRONT_PEM: frontPem,
      LCLSTREAM_FRONT_IDENTITY: `spiffe://${localTrustDomain}/service/front`,
      LCLSTREAM_MESH_CA: join(dir, "ca.crt"),
      LCLSTREAM_MESH_CRL: crlFile,
      LCLSTREAM_FRONT_ADMINS: join(dir, "admins"),
      LCLSTREAM_MESH_DIR: meshDir,
      LCLSTREAM_FRONT_SOCKET: socket,
      ...(o.idleTimeout ? { LCLSTREAM_FRONT_IDLE_TIMEOUT: o.idleTimeout } : {}),
      LCLSTREAM_REQUEST_ADDR: address(mesh.endpoints.request),
      LCLSTREAM_BUFFER_ADDR: address(mesh.endpoints.buffer),
      // The pool's other buffers, routed by the lclstream-buffer header.
      ...Object.fromEntries(mesh.endpoints.buffers.slice(1).map((url, i) => [`LCLSTREAM_BUFFER_${i + 1}_ADDR`, address(url)])),
      LCLSTREAM_CA_ADDR: address(mesh.endpoints.ca),
      LCLSTREAM_CA_ENROLL_ADDR: address(mesh.endpoints.enroll),
      LCLSTREAM_JOBS_ADDR: address(mesh.endpoints.jobs),
      LCLSTREAM_PRODUCER_ADDR: address(mesh.endpoints.producer),
    },
  });
  let log = "";
  child.stdout!.on("data", (d) => (log += d.toString()));
  child.stderr!.on("data", (d) => (log += d.toString()));
  const url = `https://127.0.0.1:${o.frontPort}`;
  const front: HaproxyFront = {
    url,
    enrollUrl: `https://127.0.0.1:${o.enrollPort}`,
    socket,
    crlFile,
    frontPem,
    process: child,
    log: () => log,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once("exit", resolve).kill("SIGKILL"));
    },
  };
  // Up when a call goes through.
  const health = createClient(Health, createMeshTransport({ baseUrl: url, tls: me }));
  for (let tries = 0; ; tries++) {
    const error = await health.check({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!error) return front;
    if (tries > 75 || child.exitCode !== null) {
      await front.close();
      throw new Error(`the front door did not come up: ${error}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
