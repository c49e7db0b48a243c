// Publishes each certificate directory under DIR (ca.crt, tls.crt, tls.key) as a Secret of its
// own, type kubernetes.io/tls, named <LCLSTREAM_SECRET_PREFIX><directory>: one server-side apply
// through the Kubernetes API each, as the pod's service account (whose Role may write only these
// Secrets). Then removes the directories: the keys stay in the Secrets only.
//
// Usage: node publish-certs.mjs DIR
//
// Environment: LCLSTREAM_SECRET_PREFIX (required), LCLSTREAM_SECRET_LABELS (JSON object),
// LCLSTREAM_KUBE_API (default: the in-cluster API server), LCLSTREAM_SERVICE_ACCOUNT_DIR (default:
// /var/run/secrets/kubernetes.io/serviceaccount, with token, ca.crt and namespace).
import { X509Certificate } from "node:crypto";
import { readFile, readdir, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { join } from "node:path";

const dir = process.argv[2];
const prefix = process.env.LCLSTREAM_SECRET_PREFIX;
if (!dir || !prefix) {
  console.error("usage: LCLSTREAM_SECRET_PREFIX=NAME- node publish-certs.mjs DIR");
  process.exit(2);
}
const labels = JSON.parse(process.env.LCLSTREAM_SECRET_LABELS || "{}");
const account = process.env.LCLSTREAM_SERVICE_ACCOUNT_DIR || "/var/run/secrets/kubernetes.io/serviceaccount";
const host = process.env.KUBERNETES_SERVICE_HOST || "kubernetes.default.svc";
const api = new URL(process.env.LCLSTREAM_KUBE_API || `https://${host.includes(":") ? `[${host}]` : host}:${process.env.KUBERNETES_SERVICE_PORT || 443}`);
const token = (await readFile(join(account, "token"), "utf8")).trim();
const namespace = (await readFile(join(account, "namespace"), "utf8")).trim();
const ca = api.protocol === "https:" ? await readFile(join(account, "ca.crt")) : undefined;

/** One call to the API server; resolves with the status and the body. */
function call(method, path, body, contentType) {
  const url = new URL(path, api);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      { method, ca, timeout: 30_000, headers: { authorization: `Bearer ${token}`, "content-type": contentType, accept: "application/json" } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
if (entries.length === 0) throw new Error(`no certificate directory in ${dir}`);
for (const entry of entries.sort()) {
  const read = (file) => readFile(join(dir, entry, file));
  const [caCrt, tlsCrt, tlsKey] = await Promise.all([read("ca.crt"), read("tls.crt"), read("tls.key")]);
  const name = `${prefix}${entry}`;
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels: { ...labels, "lclstream.io/certificate": entry } },
    type: "kubernetes.io/tls",
    data: { "ca.crt": caCrt.toString("base64"), "tls.crt": tlsCrt.toString("base64"), "tls.key": tlsKey.toString("base64") },
  };
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}?fieldManager=lclstream-pki&force=true`;
  const { status, text } = await call("PATCH", path, JSON.stringify(secret), "application/apply-patch+yaml");
  if (status !== 200 && status !== 201) {
    let reason = text;
    try {
      reason = JSON.parse(text).message ?? text;
    } catch {}
    throw new Error(`Secret ${name} was not written (HTTP ${status}): ${reason}`);
  }
  const cert = new X509Certificate(tlsCrt);
  console.log(`Secret ${name}: ${cert.subjectAltName?.match(/URI:([^,]+)/)?.[1] ?? entry}, valid until ${cert.validTo}`);
}
for (const entry of entries) await rm(join(dir, entry), { recursive: true, force: true });
