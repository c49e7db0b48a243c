#!/usr/bin/env node
// Fails when gen/ differs from what `buf generate` makes from proto/ now:
// generated code is committed, and must never drift from the API or be edited.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), "lclstream-gen-"));

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

try {
  const bin = join(root, "node_modules/.bin");
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` }; // buf finds protoc-gen-es there
  execFileSync(join(bin, "buf"), ["generate", "--output", out], { cwd: root, stdio: "inherit", env });
  const fresh = new Map(files(join(out, "gen")).map((f) => [relative(join(out, "gen"), f), readFileSync(f, "utf8")]));
  const committed = new Map(files(join(root, "gen")).map((f) => [relative(join(root, "gen"), f), readFileSync(f, "utf8")]));
  const problems = [];
  for (const [name, text] of fresh) {
    if (!committed.has(name)) problems.push(`missing: gen/${name}`);
    else if (committed.get(name) !== text) problems.push(`differs: gen/${name}`);
  }
  for (const name of committed.keys()) if (!fresh.has(name)) problems.push(`not generated from proto/: gen/${name}`);
  if (problems.length) {
    console.error(`gen/ is out of date with proto/:\n  ${problems.join("\n  ")}\nRun \`npm run generate\` and commit gen/.`);
    process.exit(1);
  }
  console.log(`gen/ matches proto/ (${fresh.size} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
