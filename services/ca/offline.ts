/**
 * Offline issuing with the CA key on disk (`lclstream ca issue`): how the
 * first admin and the mesh's services get certificates before any CA server
 * runs. Every certificate is recorded in the audit log like any other.
 */
import { CaStore } from "./ca-store.js";
import { caPaths, loadAuthority } from "./authority.js";
import { defaultLifetimes, signLeaf } from "./issuer.js";
import { resolveIdentity } from "../common/identity.js";
import type { CertMaterial, KeyType } from "../common/pki.js";
import { userInfo } from "node:os";

/** What to issue offline. */
export interface OfflineIssueRequest {
  /** `user/NAME`, `service/NAME` or a full SPIFFE URI. */
  identity: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  lifetimeMs?: number;
  keyType?: KeyType;
}

/** Issues a certificate and key with the CA in `stateDir`; returns a cert directory's material and the serial. */
export async function issueOffline(stateDir: string, request: OfflineIssueRequest): Promise<CertMaterial & { serialNumber: string }> {
  const authority = await loadAuthority(stateDir);
  const identity = resolveIdentity(request.identity, authority.trustDomain);
  const store = new CaStore(caPaths(stateDir).database);
  try {
    const { record, privateKeyPem } = await signLeaf(
      authority,
      defaultLifetimes,
      {
        identity: identity.uri,
        dnsNames: request.dnsNames ?? [],
        ipAddresses: request.ipAddresses ?? [],
        issuance: "offline",
        // The operator's account: whoever could read the CA key.
        requester: `local:${userInfo().username}`,
        keyType: request.keyType,
        lifetimeMs: request.lifetimeMs,
      },
      Date.now(),
    );
    store.insertCertificate(record);
    return { caPem: authority.certificatePem, certPem: record.certificatePem, keyPem: privateKeyPem!, serialNumber: record.serialNumber };
  } finally {
    store.close();
  }
}
