/** The request service's durable record: every data request, where it is, its stream and jobs. */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { DataRequestSchema, DataRequest_State as State, type DataRequest } from "../../gen/lclstream/request/v1/request_pb.js";
import { openDatabase, type Db } from "../common/storage.js";

const migrations = [
  `CREATE TABLE requests (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     owner TEXT NOT NULL,
     request_id TEXT,
     record BLOB NOT NULL,
     state INTEGER NOT NULL,
     UNIQUE (owner, request_id)
   );`,
];

export const finalStates = new Set([State.SUCCEEDED, State.FAILED, State.CANCELED]);

export class RequestStore {
  readonly #db: Db;

  constructor(path: string) {
    this.#db = openDatabase(path, migrations);
  }

  close(): void {
    this.#db.close();
  }

  /** The owner's request made with `requestId`, if any. */
  findByRequestId(owner: string, requestId: string): DataRequest | undefined {
    const row = this.#db.prepare("SELECT record FROM requests WHERE owner = ? AND request_id = ?").get(owner, requestId) as { record: Uint8Array } | undefined;
    return row ? fromBinary(DataRequestSchema, row.record) : undefined;
  }

  insert(id: string, request: DataRequest, requestId?: string): void {
    this.#db
      .prepare("INSERT INTO requests (id, owner, request_id, record, state) VALUES (?, ?, ?, ?, ?)")
      .run(id, request.owner, requestId || null, toBinary(DataRequestSchema, request), request.state);
  }

  get(id: string): DataRequest | undefined {
    const row = this.#db.prepare("SELECT record FROM requests WHERE id = ?").get(id) as { record: Uint8Array } | undefined;
    return row ? fromBinary(DataRequestSchema, row.record) : undefined;
  }

  save(id: string, request: DataRequest): void {
    this.#db.prepare("UPDATE requests SET record = ?, state = ? WHERE id = ?").run(toBinary(DataRequestSchema, request), request.state, id);
  }

  list(filter: { owner?: string; state?: State }, offset: number, limit: number): DataRequest[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.owner) where.push("owner = ?"), args.push(filter.owner);
    if (filter.state) where.push("state = ?"), args.push(filter.state);
    const rows = this.#db
      .prepare(`SELECT record FROM requests ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq LIMIT ? OFFSET ?`)
      .all(...args, limit, offset) as { record: Uint8Array }[];
    return rows.map((r) => fromBinary(DataRequestSchema, r.record));
  }

  /** How many requests are in each state (for the metrics). */
  countByState(): Map<State, number> {
    const rows = this.#db.prepare("SELECT state, COUNT(*) AS n FROM requests GROUP BY state").all() as { state: State; n: number }[];
    return new Map(rows.map((r) => [r.state, r.n]));
  }

  /** Requests not yet in a final state, for picking up after a restart. */
  unfinished(): DataRequest[] {
    const rows = this.#db.prepare(`SELECT record FROM requests WHERE state NOT IN (${[...finalStates].join(",")}) ORDER BY seq`).all() as {
      record: Uint8Array;
    }[];
    return rows.map((r) => fromBinary(DataRequestSchema, r.record));
  }
}
