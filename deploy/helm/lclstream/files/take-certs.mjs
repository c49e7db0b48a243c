// Takes a pod's certificates from their Secrets (/secrets/NAME, read-only) into writable
// directories (/certs/NAME), where the service writes the certificates it renews from the CA. A
// copy already there (the pod restarted) stays unless the Secret's certificate lasts longer: the
// CA republishes the Secrets, and a renewal may have failed.
//
// Usage: node take-certs.mjs NAME...
// Environment: LCLSTREAM_SECRETS_ROOT (default /secrets), LCLSTREAM_CERTS_ROOT (default /certs).
import { X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const secrets = process.env.LCLSTREAM_SECRETS_ROOT || "/secrets";
const certs = process.env.LCLSTREAM_CERTS_ROOT || "/certs";
const notAfter = (pem) => new Date(new X509Certificate(pem).validTo).getTime();

for (const name of process.argv.slice(2)) {
  const from = join(secrets, name);
  const to = join(certs, name);
  const [caCrt, tlsCrt, tlsKey] = await Promise.all(["ca.crt", "tls.crt", "tls.key"].map((f) => readFile(join(from, f))));
  const current = await readFile(join(to, "tls.crt")).catch(() => undefined);
  if (current && notAfter(current) >= notAfter(tlsCrt)) {
    console.log(`${name}: keeping the certificate in ${to} (valid until ${new X509Certificate(current).validTo})`);
    continue;
  }
  await mkdir(to, { recursive: true, mode: 0o700 });
  await writeFile(join(to, "ca.crt"), caCrt);
  await writeFile(join(to, "tls.crt"), tlsCrt);
  await writeFile(join(to, "tls.key"), tlsKey, { mode: 0o600 });
  await chmod(join(to, "tls.key"), 0o600);
  console.log(`${name}: took the certificate from ${from} (valid until ${new X509Certificate(tlsCrt).validTo})`);
}
