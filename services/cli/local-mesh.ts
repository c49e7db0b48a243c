/**
 * The whole mesh in one process on loopback (`lclstream up`, the demo, the
 * end-to-end tests): CA, job queue (local backend), buffer, producer and
 * request service, each on its own mTLS port, with a dev PKI made in the
 * state directory on first start and a certificate for the local user.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { initAuthority } from "../ca/authority.js";
import { issueOffline } from "../ca/offline.js";
import { build as buildCa } from "../ca/server.js";
import { build as buildJobs } from "../jobs/server.js";
import { build as buildBuffer } from "../buffer/server.js";
import { build as buildProducer } from "../producer/server.js";
import { build as buildRequest } from "../request/server.js";
import { createLogger } from "../common/logger.js";
import { readCertDir, writeCertDir } from "../common/pki.js";
import { describeCertificate } from "../common/renewal.js";

export const localTrustDomain = "local.lclstream";

/** Where each service listens, and the local user's cert directory: written to `<state-dir>/endpoints.json`. */
export interface Endpoints {
  ca: string;
  enroll: string;
  jobs: string;
  buffer: string;
  producer: string;
  request: string;
  /** The local user's cert directory. */
  certDir: string;
  user: string;
}

export interface LocalMesh {
  endpoints: Endpoints;
  close(): Promise<void>;
}

/** The local user's identity name, as a certificate can carry it. */
export function localUserName(): string {
  return userInfo().username.toLowerCase().replace(/[^a-z0-9._-]/g, "-") || "user";
}

export async function startLocalMesh(options: { stateDir: string; logLevel?: string; submitters?: string[] }): Promise<LocalMesh> {
  const stateDir = resolve(options.stateDir);
  const logger = (name: string) => createLogger(name, options.logLevel ?? process.env.LCLSTREAM_LOG_LEVEL ?? "warn");
  if (!existsSync(join(stateDir, "ca", "ca.key"))) await initAuthority(stateDir, localTrustDomain);
  const certs = join(stateDir, "certs");
  // Service certificates are made fresh at each start; the user's is kept while it has an hour left.
  for (const name of ["jobs", "buffer", "producer", "request"]) {
    await writeCertDir(join(certs, name), await issueOffline(stateDir, { identity: `service/${name}`, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] }));
  }
  const user = localUserName();
  const userDir = join(certs, "user");
  const current = existsSync(join(userDir, "tls.crt")) ? describeCertificate((await readCertDir(userDir)).certPem) : undefined;
  if (!current || current.notAfter - Date.now() < 3_600_000) await writeCertDir(userDir, await issueOffline(stateDir, { identity: `user/${user}` }));

  const admins = [`user/${user}`];
  const submitters = ["service/request", ...(options.submitters ?? [])];
  const closers: (() => Promise<void>)[] = [];
  try {
    const ca = await buildCa({ stateDir, admins }, logger("ca"));
    closers.push(() => ca.close());
    const shared = { revocations: ca.revocations };
    const jobs = await buildJobs({ stateDir, admins, submitters }, { ...shared, tls: await readCertDir(join(certs, "jobs")), logger: logger("jobs") });
    closers.push(() => jobs.close());
    const buffer = await buildBuffer({ stateDir, admins, submitters }, { ...shared, tls: await readCertDir(join(certs, "buffer")), logger: logger("buffer") });
    closers.push(() => buffer.close());
    const producer = await buildProducer({ dataRoots: [stateDir] }, { ...shared, tls: await readCertDir(join(certs, "producer")), logger: logger("producer") });
    closers.push(() => producer.close());
    const request = await buildRequest(
      { stateDir, admins, bufferUrl: buffer.url, jobsUrl: jobs.url, producerCertDir: join(certs, "producer"), dataRoots: [stateDir] },
      { ...shared, tls: await readCertDir(join(certs, "request")), logger: logger("request") },
    );
    closers.push(() => request.close());
    const endpoints: Endpoints = { ca: ca.url, enroll: ca.enrollUrl, jobs: jobs.url, buffer: buffer.url, producer: producer.url, request: request.url, certDir: userDir, user: `spiffe://${localTrustDomain}/user/${user}` };
    await writeFile(join(stateDir, "endpoints.json"), `${JSON.stringify(endpoints, null, 2)}\n`);
    return {
      endpoints,
      async close() {
        // The request service first, the CA last: nothing is left calling a stopped service.
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw error;
  }
}
