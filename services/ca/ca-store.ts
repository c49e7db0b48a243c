/**
 * The CA's durable record: every certificate it signed (the audit log),
 * enrollment tokens (hashed), and revocations in order.
 */
import { EventEmitter } from "node:events";
import { openDatabase, type Db } from "../common/storage.js";

const migrations = [
  `CREATE TABLE certificates (
     serial_number TEXT PRIMARY KEY,
     identity TEXT NOT NULL,
     dns_names TEXT NOT NULL,
     ip_addresses TEXT NOT NULL,
     key_type TEXT NOT NULL,
     not_before INTEGER NOT NULL,
     not_after INTEGER NOT NULL,
     issuance TEXT NOT NULL,
     requester TEXT NOT NULL,
     certificate_pem TEXT NOT NULL,
     create_time INTEGER NOT NULL
   );
   CREATE INDEX certificates_identity ON certificates (identity);
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     secret_hash TEXT NOT NULL UNIQUE,
     identity TEXT NOT NULL,
     dns_names TEXT NOT NULL,
     ip_addresses TEXT NOT NULL,
     creator TEXT NOT NULL,
     create_time INTEGER NOT NULL,
     expire_time INTEGER NOT NULL,
     used_time INTEGER,
     certificate TEXT REFERENCES certificates (serial_number)
   );
   CREATE TABLE revocations (
     sequence INTEGER PRIMARY KEY AUTOINCREMENT,
     serial_number TEXT NOT NULL UNIQUE REFERENCES certificates (serial_number),
     identity TEXT NOT NULL,
     reason INTEGER NOT NULL,
     revoker TEXT NOT NULL,
     revoke_time INTEGER NOT NULL
   );`,
];

export type Issuance = "enroll" | "renew" | "offline";

/** A signed certificate as recorded. */
export interface CertificateRecord {
  serialNumber: string;
  identity: string;
  dnsNames: string[];
  ipAddresses: string[];
  keyType: string;
  notBefore: number;
  notAfter: number;
  issuance: Issuance;
  requester: string;
  certificatePem: string;
  createTime: number;
  revocation?: RevocationRecord;
}

/** An enrollment token as recorded (its secret is only hashed). */
export interface TokenRecord {
  id: string;
  identity: string;
  dnsNames: string[];
  ipAddresses: string[];
  creator: string;
  createTime: number;
  expireTime: number;
  usedTime?: number;
  certificate?: string;
}

/** A revocation as recorded. */
export interface RevocationRecord {
  sequence: number;
  serialNumber: string;
  identity: string;
  reason: number;
  revoker: string;
  revokeTime: number;
}

type Row = Record<string, unknown>;

function certificateFrom(row: Row): CertificateRecord {
  const record: CertificateRecord = {
    serialNumber: row.serial_number as string,
    identity: row.identity as string,
    dnsNames: JSON.parse(row.dns_names as string),
    ipAddresses: JSON.parse(row.ip_addresses as string),
    keyType: row.key_type as string,
    notBefore: row.not_before as number,
    notAfter: row.not_after as number,
    issuance: row.issuance as Issuance,
    requester: row.requester as string,
    certificatePem: row.certificate_pem as string,
    createTime: row.create_time as number,
  };
  if (row.sequence != null) record.revocation = revocationFrom(row);
  return record;
}

function revocationFrom(row: Row): RevocationRecord {
  return {
    sequence: row.sequence as number,
    serialNumber: row.serial_number as string,
    identity: row.identity as string,
    reason: row.reason as number,
    revoker: row.revoker as string,
    revokeTime: row.revoke_time as number,
  };
}

function tokenFrom(row: Row): TokenRecord {
  return {
    id: row.id as string,
    identity: row.identity as string,
    dnsNames: JSON.parse(row.dns_names as string),
    ipAddresses: JSON.parse(row.ip_addresses as string),
    creator: row.creator as string,
    createTime: row.create_time as number,
    expireTime: row.expire_time as number,
    usedTime: (row.used_time as number | null) ?? undefined,
    certificate: (row.certificate as string | null) ?? undefined,
  };
}

/** Filters of {@link CaStore.listCertificates}. */
export interface CertificateFilter {
  identity?: string;
  state?: "active" | "expired" | "revoked";
  now: number;
}

const certificateColumns = `c.*, r.sequence, r.reason, r.revoker, r.revoke_time`;
const certificateJoin = `certificates c LEFT JOIN revocations r ON r.serial_number = c.serial_number`;

/** The CA's SQLite store. Emits "revoked" with each new RevocationRecord. */
export class CaStore extends EventEmitter<{ revoked: [RevocationRecord] }> {
  readonly #db: Db;

  constructor(path: string) {
    super();
    this.#db = openDatabase(path, migrations);
  }

  close(): void {
    this.#db.close();
  }

  insertCertificate(record: CertificateRecord): void {
    this.#db
      .prepare(
        `INSERT INTO certificates VALUES (@serialNumber, @identity, @dnsNames, @ipAddresses, @keyType, @notBefore, @notAfter, @issuance, @requester, @certificatePem, @createTime)`,
      )
      .run({ ...record, dnsNames: JSON.stringify(record.dnsNames), ipAddresses: JSON.stringify(record.ipAddresses), revocation: undefined });
  }

  getCertificate(serialNumber: string): CertificateRecord | undefined {
    const row = this.#db.prepare(`SELECT ${certificateColumns} FROM ${certificateJoin} WHERE c.serial_number = ?`).get(serialNumber);
    return row ? certificateFrom(row as Row) : undefined;
  }

  /** Certificates newest first, `offset` then at most `limit`. */
  listCertificates(filter: CertificateFilter, offset: number, limit: number): CertificateRecord[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { now: filter.now, limit, offset };
    if (filter.identity) {
      where.push("c.identity = @identity");
      params.identity = filter.identity;
    }
    if (filter.state === "revoked") where.push("r.sequence IS NOT NULL");
    if (filter.state === "active") where.push("r.sequence IS NULL AND c.not_after > @now");
    if (filter.state === "expired") where.push("r.sequence IS NULL AND c.not_after <= @now");
    const sql = `SELECT ${certificateColumns} FROM ${certificateJoin} ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
                 ORDER BY c.create_time DESC, c.serial_number LIMIT @limit OFFSET @offset`;
    return (this.#db.prepare(sql).all(params) as Row[]).map(certificateFrom);
  }

  countCertificates(): number {
    return (this.#db.prepare("SELECT count(*) AS n FROM certificates").get() as { n: number }).n;
  }

  insertToken(record: TokenRecord, secretHash: string): void {
    this.#db
      .prepare(
        `INSERT INTO tokens (id, secret_hash, identity, dns_names, ip_addresses, creator, create_time, expire_time)
         VALUES (@id, @secretHash, @identity, @dnsNames, @ipAddresses, @creator, @createTime, @expireTime)`,
      )
      .run({ ...record, secretHash, dnsNames: JSON.stringify(record.dnsNames), ipAddresses: JSON.stringify(record.ipAddresses) });
  }

  findToken(secretHash: string): TokenRecord | undefined {
    const row = this.#db.prepare("SELECT * FROM tokens WHERE secret_hash = ?").get(secretHash);
    return row ? tokenFrom(row as Row) : undefined;
  }

  /**
   * Spends a token and records the certificate issued with it, atomically.
   * Returns false (and records nothing) when the token was spent meanwhile.
   */
  spendToken(tokenId: string, certificate: CertificateRecord, now: number): boolean {
    return this.#db.transaction(() => {
      const spent = this.#db
        .prepare("UPDATE tokens SET used_time = @now, certificate = @serial WHERE id = @id AND used_time IS NULL AND expire_time > @now")
        .run({ id: tokenId, now, serial: null });
      if (spent.changes !== 1) return false;
      this.insertCertificate(certificate);
      this.#db.prepare("UPDATE tokens SET certificate = ? WHERE id = ?").run(certificate.serialNumber, tokenId);
      return true;
    })();
  }

  /** Records a revocation; returns the existing one when the serial was already revoked. */
  revoke(serialNumber: string, reason: number, revoker: string, now: number): RevocationRecord {
    const result = this.#db.transaction(() => {
      const existing = this.#db.prepare("SELECT * FROM revocations WHERE serial_number = ?").get(serialNumber);
      if (existing) return { record: revocationFrom(existing as Row), fresh: false };
      const cert = this.getCertificate(serialNumber);
      if (!cert) throw new Error(`no certificate ${serialNumber}`);
      const info = this.#db
        .prepare("INSERT INTO revocations (serial_number, identity, reason, revoker, revoke_time) VALUES (?, ?, ?, ?, ?)")
        .run(serialNumber, cert.identity, reason, revoker, now);
      const record: RevocationRecord = { sequence: Number(info.lastInsertRowid), serialNumber, identity: cert.identity, reason, revoker, revokeTime: now };
      return { record, fresh: true };
    })();
    if (result.fresh) this.emit("revoked", result.record);
    return result.record;
  }

  /** Revocations with a sequence above `after`, oldest first. */
  revocationsAfter(after: number): RevocationRecord[] {
    return (this.#db.prepare("SELECT * FROM revocations WHERE sequence > ? ORDER BY sequence").all(after) as Row[]).map(revocationFrom);
  }
}
