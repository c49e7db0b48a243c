#!/usr/bin/env node
// `buf breaking` against the API as it was on main: on a branch against main's
// tip, on main against the previous commit. Wire-incompatible changes to a v1
// package fail; add a field or a v2 package instead.
import { execFileSync } from "node:child_process";

const git = (...args) => execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
const has = (ref) => {
  try {
    git("cat-file", "-e", `${ref}:proto`);
    return true;
  } catch {
    return false;
  }
};

const branch = git("rev-parse", "--abbrev-ref", "HEAD");
const against = branch === "main" ? "HEAD~1" : "main";
if (!has(against)) {
  console.log(`buf breaking: skipped, ${against} has no proto/ to compare with (first API commit or shallow clone)`);
  process.exit(0);
}
try {
  execFileSync("node_modules/.bin/buf", ["breaking", "--against", `.git#ref=${git("rev-parse", against)}`], { stdio: "inherit" });
  console.log(`buf breaking: no breaking change against ${against}`);
} catch {
  console.error(`buf breaking: the API changed incompatibly against ${against} (see above)`);
  process.exit(1);
}
