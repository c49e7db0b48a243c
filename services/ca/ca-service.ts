/**
 * CertificateAuthorityService: enrollment with one-time tokens, renewal,
 * revocation, the CRL and its live feed, and the audit log of every
 * certificate signed.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { type CertificateAuthorityService, Certificate_Issuance, Certificate_State, KeyType, type CertificateSchema } from "../../gen/lclstream/ca/v1/ca_pb.js";
import { invalidArgument, rpcError } from "../common/errors.js";
import { resolveIdentityField, type Identity } from "../common/identity.js";
import { callerOf, callerSerialOf } from "../common/peer.js";
import { AsyncQueue } from "../common/async-queue.js";
import { pageOf, readPage } from "../common/paging.js";
import { normalizeSerial, type CertificateAuthority } from "../common/pki.js";
import type { Policy } from "../common/policy.js";
import type { CaStore, CertificateRecord, RevocationRecord } from "./ca-store.js";
import { caFingerprint, crlToPem, signCrl } from "./authority.js";
import { caDomain, inspectCsr, type CsrRequest } from "./csr.js";
import { defaultLifetimes, signLeaf, type Lifetimes } from "./issuer.js";

const minute = 60 * 1000;
const hour = 60 * minute;

/** What the CA service needs. */
export interface CaServiceDeps {
  store: CaStore;
  authority: CertificateAuthority;
  policy: Policy;
  lifetimes?: Lifetimes;
  /** The clock, in ms since the epoch. */
  now?: () => number;
  /** How long a CRL is valid; a fresh one is signed before then. Default 24 h. */
  crlValidityMs?: number;
}

/** Token secrets: `lcls1.<secret>.<sha256 of the CA certificate>`, so the enrolling party can pin the CA. */
const tokenPattern = /^lcls1\.([A-Za-z0-9_-]{43})\.([0-9a-f]{64})$/;

function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** Splits an enrollment token into its secret and the CA fingerprint it pins. */
export function parseEnrollmentToken(token: string): { secret: string; caFingerprint: string } | undefined {
  const m = tokenPattern.exec(token.trim());
  return m ? { secret: m[1]!, caFingerprint: m[2]! } : undefined;
}

const issuanceToProto = { enroll: Certificate_Issuance.ENROLL, renew: Certificate_Issuance.RENEW, offline: Certificate_Issuance.OFFLINE };

/** The service, plus the pieces the server and CLI reuse. */
export function createCaService(deps: CaServiceDeps) {
  const { store, authority, policy } = deps;
  const now = deps.now ?? Date.now;
  const lifetimes = deps.lifetimes ?? defaultLifetimes;
  const crlValidityMs = deps.crlValidityMs ?? 24 * hour;
  const trustDomain = authority.trustDomain;
  const fingerprint = caFingerprint(authority);

  let crl: { number: number; pem: string; der: Uint8Array; thisUpdate: number; nextUpdate: number } | undefined;
  /** The CRL, re-signed when a revocation happened or a third of its validity is left. */
  async function currentCrl() {
    const revocations = store.revocationsAfter(0);
    const number = revocations.at(-1)?.sequence ?? 0;
    const t = now();
    if (!crl || crl.number !== number || t > crl.nextUpdate - crlValidityMs / 3) {
      const signed = await signCrl(authority, revocations, new Date(t), crlValidityMs);
      crl = { number, pem: crlToPem(signed), der: new Uint8Array(signed.rawData), thisUpdate: t, nextUpdate: t + crlValidityMs };
    }
    return crl;
  }

  function toProto(record: CertificateRecord): MessageInitShape<typeof CertificateSchema> {
    const state = record.revocation ? Certificate_State.REVOKED : record.notAfter <= now() ? Certificate_State.EXPIRED : Certificate_State.ACTIVE;
    return {
      name: `certificates/${record.serialNumber}`,
      serialNumber: record.serialNumber,
      identity: record.identity,
      dnsNames: record.dnsNames,
      ipAddresses: record.ipAddresses,
      keyType: record.keyType === "ed25519" ? KeyType.ED25519 : KeyType.ECDSA_P256,
      notBeforeTime: timestampFromMs(record.notBefore),
      notAfterTime: timestampFromMs(record.notAfter),
      issuance: issuanceToProto[record.issuance],
      requester: record.requester,
      state,
      revocation: record.revocation ? revocationToProto(record.revocation) : undefined,
      certificatePem: record.certificatePem,
      createTime: timestampFromMs(record.createTime),
    };
  }

  function requireAdmin(ctx: HandlerContext): Identity {
    const caller = callerOf(ctx);
    if (!policy.isAdmin(caller)) {
      throw rpcError(Code.PermissionDenied, caDomain, "ADMIN_REQUIRED", `${caller.uri} is not an admin; ask an admin listed in the policy file`, {
        metadata: { caller: caller.uri },
      });
    }
    return caller;
  }

  /**
   * Checks that a CSR asks for `identity` (or no identity, which means that
   * one) and only allowed DNS and IP names.
   */
  function checkNames(csr: CsrRequest, identity: string, dnsAllowed: string[], ipAllowed: string[]) {
    if (csr.uris.length > 1 || (csr.uris.length === 1 && csr.uris[0] !== identity)) {
      throw rpcError(
        Code.PermissionDenied,
        caDomain,
        "CSR_IDENTITY_MISMATCH",
        `the CSR asks for ${csr.uris.join(", ")}, but this request may only certify ${identity}`,
        { metadata: { allowed: identity } },
      );
    }
    const badDns = csr.dnsNames.filter((n) => !dnsAllowed.includes(n));
    const badIp = csr.ipAddresses.filter((n) => !ipAllowed.includes(n));
    if (badDns.length || badIp.length) {
      throw rpcError(
        Code.PermissionDenied,
        caDomain,
        "CSR_NAME_NOT_ALLOWED",
        `the CSR asks for names that were not granted: ${[...badDns, ...badIp].join(", ")}; allowed: ${[...dnsAllowed, ...ipAllowed].join(", ") || "none"}`,
      );
    }
  }

  const service: ServiceImpl<typeof CertificateAuthorityService> = {
    getTrustBundle() {
      return { trustDomain, caCertificatesPem: [authority.certificatePem] };
    },

    createEnrollmentToken(req, ctx) {
      const creator = requireAdmin(ctx);
      const identity = resolveIdentityField(req.identity, trustDomain, caDomain, "identity");
      const ttlMs = req.ttl ? durationMs(req.ttl) : hour;
      const violations = [];
      if (ttlMs <= 0 || ttlMs > 7 * 24 * hour) violations.push({ field: "ttl", description: "must be positive and at most 7 days" });
      if (identity.kind === "user" && (req.dnsNames.length || req.ipAddresses.length)) {
        violations.push({ field: "dns_names", description: "user certificates carry no DNS or IP names; only service tokens may grant them" });
      }
      for (const [i, ip] of req.ipAddresses.entries()) {
        if (!isIP(ip)) violations.push({ field: `ip_addresses[${i}]`, description: `"${ip}" is not an IP address` });
      }
      for (const [i, dns] of req.dnsNames.entries()) {
        if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(dns)) {
          violations.push({ field: `dns_names[${i}]`, description: `"${dns}" is not a DNS name` });
        }
      }
      if (violations.length) throw invalidArgument(caDomain, violations);

      const secret = randomBytes(32).toString("base64url");
      const id = randomBytes(8).toString("hex");
      const t = now();
      const record = {
        id,
        identity: identity.uri,
        dnsNames: req.dnsNames,
        ipAddresses: req.ipAddresses,
        creator: creator.uri,
        createTime: t,
        expireTime: t + ttlMs,
      };
      store.insertToken(record, hashSecret(secret));
      return {
        token: {
          name: `enrollmentTokens/${id}`,
          identity: record.identity,
          dnsNames: record.dnsNames,
          ipAddresses: record.ipAddresses,
          creator: record.creator,
          createTime: timestampFromMs(t),
          expireTime: timestampFromMs(record.expireTime),
          state: 1,
        },
        secret: `lcls1.${secret}.${fingerprint}`,
      };
    },

    async enroll(req) {
      const parsed = parseEnrollmentToken(req.token);
      // One answer for every unusable token, so a guesser learns nothing.
      const refused = () =>
        rpcError(Code.PermissionDenied, caDomain, "TOKEN_REFUSED", "the enrollment token is unknown, expired or already used; ask an admin for a new one");
      if (!parsed) throw invalidArgument(caDomain, [{ field: "token", description: "not an lclstream enrollment token (lcls1.…)" }], "TOKEN_MALFORMED");
      const token = store.findToken(hashSecret(parsed.secret));
      if (!token || token.usedTime !== undefined || token.expireTime <= now()) throw refused();
      if (!timingSafeEqual(Buffer.from(parsed.caFingerprint), Buffer.from(fingerprint))) {
        throw rpcError(Code.FailedPrecondition, caDomain, "TOKEN_FOR_ANOTHER_CA", "the token was made by another CA; enroll with that CA");
      }
      const csr = await inspectCsr(req.csrPem);
      checkNames(csr, token.identity, token.dnsNames, token.ipAddresses);
      const t = now();
      const { record } = await signLeaf(
        authority,
        lifetimes,
        {
          identity: token.identity,
          dnsNames: csr.dnsNames,
          ipAddresses: csr.ipAddresses,
          publicKey: csr.publicKey,
          keyType: csr.keyType,
          issuance: "enroll",
          requester: token.creator,
        },
        t,
      );
      if (!store.spendToken(token.id, record, t)) throw refused();
      return { certificate: toProto(record), certificateChainPem: record.certificatePem, caCertificatesPem: [authority.certificatePem] };
    },

    async renew(req, ctx) {
      const caller = callerOf(ctx);
      const serial = callerSerialOf(ctx);
      const current = serial ? store.getCertificate(serial) : undefined;
      if (!current || current.identity !== caller.uri) {
        throw rpcError(
          Code.FailedPrecondition,
          caDomain,
          "CERTIFICATE_UNKNOWN",
          "the CA has no record of the certificate this call was made with; enroll again",
        );
      }
      if (current.revocation) throw rpcError(Code.Unauthenticated, caDomain, "CERTIFICATE_REVOKED", "the certificate was revoked; enroll again");
      const csr = await inspectCsr(req.csrPem);
      checkNames(csr, caller.uri, current.dnsNames, current.ipAddresses);
      const { record } = await signLeaf(
        authority,
        lifetimes,
        {
          identity: caller.uri,
          dnsNames: csr.dnsNames,
          ipAddresses: csr.ipAddresses,
          publicKey: csr.publicKey,
          keyType: csr.keyType,
          issuance: "renew",
          requester: caller.uri,
        },
        now(),
      );
      store.insertCertificate(record);
      return { certificate: toProto(record), certificateChainPem: record.certificatePem, caCertificatesPem: [authority.certificatePem] };
    },

    revoke(req, ctx) {
      const caller = callerOf(ctx);
      const serial = normalizeSerial(req.serialNumber);
      const record = /^[0-9a-f]{1,40}$/.test(serial) ? store.getCertificate(serial) : undefined;
      if (!record)
        throw rpcError(Code.NotFound, caDomain, "CERTIFICATE_NOT_FOUND", `no certificate with serial ${req.serialNumber}; see \`lclstream ca list\``);
      if (record.identity !== caller.uri && !policy.isAdmin(caller)) {
        throw rpcError(Code.PermissionDenied, caDomain, "ADMIN_REQUIRED", "only an admin may revoke another identity's certificate");
      }
      store.revoke(serial, req.reason, caller.uri, now());
      return { certificate: toProto(store.getCertificate(serial)!) };
    },

    listCertificates(req, ctx) {
      requireAdmin(ctx);
      const page = readPage(req, caDomain);
      const state = ({ 1: "active", 2: "expired", 3: "revoked" } as const)[req.state as 1 | 2 | 3];
      const identity = req.identity ? resolveIdentityField(req.identity, trustDomain, caDomain, "identity").uri : undefined;
      const { items, nextPageToken } = pageOf(store.listCertificates({ identity, state, now: now() }, page.offset, page.size + 1), page);
      return { certificates: items.map(toProto), nextPageToken };
    },

    async getRevocationList() {
      const c = await currentCrl();
      return {
        crlDer: c.der,
        crlPem: c.pem,
        crlNumber: BigInt(c.number),
        thisUpdateTime: timestampFromMs(c.thisUpdate),
        nextUpdateTime: timestampFromMs(c.nextUpdate),
      };
    },

    async *watchRevocations(req, ctx) {
      const queue = new AsyncQueue<RevocationRecord>();
      const onRevoked = (r: RevocationRecord) => queue.push(r);
      store.on("revoked", onRevoked); // before the replay, so nothing falls between
      try {
        let last = Number(req.afterSequence);
        for (const r of store.revocationsAfter(last)) queue.push(r);
        for await (const r of queue.drain(ctx.signal)) {
          if (r.sequence <= last) continue;
          last = r.sequence;
          yield { revocation: revocationToProto(r) };
        }
      } finally {
        store.off("revoked", onRevoked);
      }
    },
  };
  return { service, currentCrl, fingerprint, toProto };
}

function revocationToProto(r: RevocationRecord) {
  return {
    sequence: BigInt(r.sequence),
    serialNumber: r.serialNumber,
    identity: r.identity,
    reason: r.reason,
    revoker: r.revoker,
    revokeTime: timestampFromMs(r.revokeTime),
  };
}
