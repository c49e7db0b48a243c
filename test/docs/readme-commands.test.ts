/**
 * The README's command blocks, run as a user types them: every `lclstream`
 * line of every ```sh block, in order, against a fresh `lclstream up` in a
 * state directory of the test's own. A line ending in `&` runs in the
 * background, and the next line waits for its first line of output (as a
 * user reads `up`'s banner before typing on); every other line must exit 0.
 * `npm` lines are what CI itself runs, and are left to it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { lclstream, lclstreamBin } from "../helpers/cli.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The command lines of the README's ```sh blocks, comments and blank lines dropped. */
function readmeCommands(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)].flatMap((m) =>
    m[1]!
      .split("\n")
      .map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => line && !line.startsWith("#")),
  );
}

/** A command line's words (the README's lines need no quoting). */
const words = (line: string) => line.split(/\s+/);

describe("README.md's commands", () => {
  const background: ChildProcess[] = [];
  let dir: string | undefined;
  afterAll(async () => {
    for (const child of background.reverse()) {
      if (child.exitCode !== null) continue;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("are lclstream commands, or npm commands CI runs itself", () => {
    const lines = readmeCommands(readFileSync(join(root, "README.md"), "utf8"));
    expect(lines.filter((l) => l.startsWith("lclstream ")).length).toBeGreaterThanOrEqual(5);
    expect(lines.filter((l) => !/^(lclstream|npm) /.test(l))).toEqual([]);
  });

  it("run, in order, against a fresh `lclstream up`", { timeout: 300_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-readme-"));
    // The user's working directory: the repository's examples are where the README names them.
    await symlink(join(root, "examples"), join(dir, "examples"));
    const env = { ...process.env, LCLSTREAM_STATE_DIR: join(dir, "state") };
    const ran: string[] = [];
    for (const line of readmeCommands(readFileSync(join(root, "README.md"), "utf8"))) {
      if (!line.startsWith("lclstream ")) continue;
      const args = words(line.replace(/\s*&$/, "")).slice(1);
      if (line.endsWith("&")) {
        const child = spawn(process.execPath, [lclstreamBin, ...args], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
        background.push(child);
        let stderr = "";
        child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
        const printed = await new Promise<string>((resolve, reject) => {
          child.stdout!.once("data", (chunk: Buffer) => resolve(chunk.toString()));
          child.once("exit", (code) => reject(new Error(`\`${line}\` exited with ${code}: ${stderr}`)));
        });
        expect(printed.length, line).toBeGreaterThan(0);
      } else {
        const { code, stderr } = await lclstream(args, { cwd: dir, env, timeoutMs: 240_000 });
        expect(code, `\`${line}\`: ${stderr}`).toBe(0);
      }
      ran.push(line);
    }
    expect(ran.length).toBeGreaterThanOrEqual(5);
  });
});
