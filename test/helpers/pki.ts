/** A real PKI for a test file: a CA, a server, two users, the proxy, and a foreign CA. */
import { createCertificateAuthority, issueMaterial, type CertMaterial, type CertificateAuthority } from "../../services/common/pki.js";
import { identityUri } from "../../services/common/identity.js";

export const trustDomain = "test.lclstream";

export interface TestPki {
  ca: CertificateAuthority;
  server: CertMaterial;
  alice: CertMaterial;
  bob: CertMaterial;
  /** user/admin, for servers whose policy names it. */
  admin: CertMaterial;
  proxy: CertMaterial;
  /** A client whose certificate comes from another CA with the same trust domain. */
  stranger: CertMaterial;
  /** Trust material only (no client certificate). */
  anonymous: Pick<CertMaterial, "caPem">;
  uri: (kind: "user" | "service", name: string) => string;
}

export async function createTestPki(): Promise<TestPki> {
  const ca = await createCertificateAuthority({ trustDomain });
  const foreign = await createCertificateAuthority({ trustDomain, commonName: "someone else's CA" });
  const uri = (kind: "user" | "service", name: string) => identityUri(trustDomain, kind, name);
  const server = await issueMaterial(ca, { identity: uri("service", "test"), dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  const stranger = await issueMaterial(foreign, { identity: uri("user", "alice") });
  return {
    ca,
    server,
    alice: await issueMaterial(ca, { identity: uri("user", "alice") }),
    bob: await issueMaterial(ca, { identity: uri("user", "bob") }),
    admin: await issueMaterial(ca, { identity: uri("user", "admin") }),
    proxy: await issueMaterial(ca, { identity: uri("service", "proxy") }),
    stranger: { ...stranger, caPem: ca.certificatePem },
    anonymous: { caPem: ca.certificatePem },
    uri,
  };
}
