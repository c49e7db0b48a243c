/** Tools installed by scripts/install-system-deps.sh, for system tests. */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const toolsDir = fileURLToPath(new URL("../../.tools/bin", import.meta.url));

/** Path of an installed tool; throws with the install command when missing. */
export function tool(name: string): string {
  const path = join(toolsDir, name);
  if (!existsSync(path)) throw new Error(`${name} is not installed: run scripts/install-system-deps.sh (npm run test:system does)`);
  return path;
}

/** Runs a command and resolves with its exit code and output, never rejecting on a non-zero exit. */
export function run(file: string, args: string[], timeoutMs = 30_000, env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, env }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Path of a tool installed from Debian packages (on PATH, or in /usr/sbin which a user's PATH may lack). */
export function debianTool(name: string): string {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin"]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not installed: run scripts/install-system-deps.sh (npm run test:system does)`);
}
