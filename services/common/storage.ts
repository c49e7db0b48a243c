/**
 * Control-plane state in SQLite (better-sqlite3) under the state directory:
 * one database file per service, schema versions applied in order on open.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

/**
 * Opens (creating if needed) the database at `path` and brings its schema up
 * to date: `migrations[i]` takes the schema from version i to i + 1.
 */
export function openDatabase(path: string, migrations: readonly string[]): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  // Every commit reaches the disk: certificates and revocations must survive a crash.
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > migrations.length) {
    db.close();
    throw new Error(`${path} has schema version ${version}, newer than this lclstream knows (${migrations.length}); upgrade lclstream`);
  }
  db.transaction(() => {
    for (let v = version; v < migrations.length; v++) db.exec(migrations[v]!);
    db.pragma(`user_version = ${migrations.length}`);
  })();
  return db;
}
