// Builds the native module (native/: the data path's Subscribe read and
// Publish sent on threads of their own) with node-gyp against the headers
// installed beside this Node, when a compiler is there. It is optional: when
// it cannot be built, lclstream says so here and the data path uses Node's
// own HTTP/2 instead (services/common/native-stream.ts).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const prefix = dirname(dirname(process.execPath));
// npm names its own node-gyp to lifecycle scripts; otherwise it sits beside npm.
const nodeGyp = process.env.npm_config_node_gyp ?? join(prefix, "lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js");
const args = [nodeGyp, "rebuild", "--loglevel=warn"];
// Headers installed with Node: no download (the facility's build hosts may have no internet).
if (existsSync(join(prefix, "include/node/node_api.h"))) args.push(`--nodedir=${prefix}`);

if (process.env.LCLSTREAM_NATIVE === "0") {
  console.log("native module: not built (LCLSTREAM_NATIVE=0)");
} else if (!existsSync(nodeGyp)) {
  console.warn(`native module: not built, node-gyp not found at ${nodeGyp}; the data path uses Node's HTTP/2`);
} else {
  const r = spawnSync(process.execPath, args, { cwd: join(root, "native"), stdio: ["ignore", "inherit", "inherit"] });
  if (r.status === 0) console.log("native module: built");
  else console.warn("native module: not built (see the errors above; it needs g++, make and Node's headers); the data path uses Node's HTTP/2");
}
