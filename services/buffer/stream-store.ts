/**
 * The buffer's durable record of its streams: definition, owner, state. The
 * batches of a durable stream live in its segment log; a stream that was not
 * durable is marked lost when the buffer starts again, never silently empty.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { StreamSchema, type Stream } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { openDatabase, type Db } from "../common/storage.js";
import type { StreamState } from "./buffer-stream.js";

const migrations = [
  `CREATE TABLE streams (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     owner TEXT NOT NULL,
     request_id TEXT,
     definition BLOB NOT NULL,
     state TEXT NOT NULL,
     state_reason TEXT NOT NULL DEFAULT '',
     create_time INTEGER NOT NULL,
     UNIQUE (owner, request_id)
   );`,
];

/** A stream as recorded: its definition (a Stream without live fields) and where it is. */
export interface StreamRecord {
  id: string;
  owner: string;
  requestId?: string;
  definition: Stream;
  state: StreamState;
  stateReason: string;
  createTime: number;
}

export class StreamStore {
  readonly #db: Db;

  constructor(path: string) {
    this.#db = openDatabase(path, migrations);
  }

  close(): void {
    this.#db.close();
  }

  /** Records a new stream. */
  insert(record: StreamRecord): void {
    this.#db
      .prepare("INSERT INTO streams (id, owner, request_id, definition, state, state_reason, create_time) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(record.id, record.owner, record.requestId ?? null, toBinary(StreamSchema, record.definition), record.state, record.stateReason, record.createTime);
  }

  /** The id of the owner's stream created with `requestId`, if any. */
  findByRequest(owner: string, requestId: string): string | undefined {
    return (this.#db.prepare("SELECT id FROM streams WHERE owner = ? AND request_id = ?").get(owner, requestId) as { id: string } | undefined)?.id;
  }

  exists(id: string): boolean {
    return this.#db.prepare("SELECT 1 FROM streams WHERE id = ?").get(id) !== undefined;
  }

  /** Every stream, in creation order. */
  all(): StreamRecord[] {
    return this.#db.prepare("SELECT * FROM streams ORDER BY seq").all().map(toRecord);
  }

  setState(id: string, state: StreamState, reason: string): void {
    this.#db.prepare("UPDATE streams SET state = ?, state_reason = ? WHERE id = ?").run(state, reason, id);
  }

  delete(id: string): void {
    this.#db.prepare("DELETE FROM streams WHERE id = ?").run(id);
  }
}

function toRecord(row: unknown): StreamRecord {
  const r = row as Record<string, unknown>;
  return {
    id: r.id as string,
    owner: r.owner as string,
    requestId: (r.request_id as string | null) ?? undefined,
    definition: fromBinary(StreamSchema, r.definition as Uint8Array),
    state: r.state as StreamState,
    stateReason: r.state_reason as string,
    createTime: r.create_time as number,
  };
}
