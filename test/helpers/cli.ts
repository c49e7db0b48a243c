/** The built `lclstream` command, run as a user runs it. */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const lclstreamBin = fileURLToPath(new URL("../../bin/lclstream.js", import.meta.url));

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `lclstream ARGS…` to completion; never rejects on a non-zero exit. */
export function lclstream(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const settings = { timeout: options.timeoutMs ?? 20_000, env: { ...process.env, ...options.env }, cwd: options.cwd };
    const child = execFile(process.execPath, [lclstreamBin, ...args], settings, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end(options.input ?? "");
  });
}

/** A long-running `lclstream` command (a server). */
export interface RunningCommand {
  child: ChildProcess;
  /** Lines printed on stdout so far. */
  lines: string[];
  /** Sends `signal` and resolves with the exit code and stderr. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; stderr: string }>;
}

/**
 * Starts `lclstream ARGS…` and resolves once it has printed a line matching
 * each of `ready` (or rejects with its stderr when it exits first).
 */
export function startLclstream(args: string[], ready: RegExp[], timeoutMs = 15_000, env?: NodeJS.ProcessEnv): Promise<RunningCommand> {
  const child = spawn(process.execPath, [lclstreamBin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env });
  const lines: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const running: RunningCommand = {
    child,
    lines,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null) child.kill(signal);
      return { code: await exited, stderr };
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`lclstream ${args.join(" ")} was not ready within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      lines.push(line);
      if (ready.every((r) => lines.some((l) => r.test(l)))) {
        clearTimeout(timer);
        resolve(running);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`lclstream ${args.join(" ")} exited with ${code}: ${stderr}`));
    });
  });
}

/** The first capture of `pattern` among `lines`. */
export function capture(lines: string[], pattern: RegExp): string {
  for (const line of lines) {
    const m = pattern.exec(line);
    if (m?.[1]) return m[1];
  }
  throw new Error(`no line matches ${pattern}: ${lines.join("\n")}`);
}

/** A CA in `dir`/state, and the certificates a buffer process on loopback and its user alice need (`dir`/buffer, `dir`/alice); the state directory. */
export async function issueBufferPki(dir: string, trustDomain: string): Promise<string> {
  const state = join(dir, "state");
  await lclstream(["ca", "init", "--trust-domain", trustDomain, "--state-dir", state]);
  await lclstream(["ca", "issue", "--state-dir", state, "--identity", "service/buffer", "--ip", "127.0.0.1", "--out", join(dir, "buffer")]);
  await lclstream(["ca", "issue", "--state-dir", state, "--identity", "user/alice", "--out", join(dir, "alice")]);
  return state;
}
