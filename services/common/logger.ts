/**
 * JSON logs with pino, on stderr: stdout is for what a command prints (its
 * banner, its results, JSON a script reads), and container runtimes collect
 * both. LCLSTREAM_LOG_LEVEL sets the level (`silent` in tests);
 * LCLSTREAM_LOG_FILE (set by `--log-file`) appends them to a file instead.
 */
import { pino, type Logger } from "pino";

export type { Logger };

/** A logger for one server or command. */
export function createLogger(name: string, level = process.env.LCLSTREAM_LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level }, pino.destination({ dest: process.env.LCLSTREAM_LOG_FILE || 2, sync: true, mkdir: true }));
}
