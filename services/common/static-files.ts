/**
 * Static files for GET requests under a path prefix (the viewer page), on
 * HTTP/1.1 or HTTP/2: nothing outside the directory, no listings, no caching
 * surprises.
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { extname, join, resolve, sep } from "node:path";

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
};

/** What the handler needs of a request and a response (node:http and node:http2 compat both fit). */
interface Request {
  method?: string;
  url?: string;
}
interface Response extends NodeJS.WritableStream {
  writeHead(status: number, headers: Record<string, string>): unknown;
}

/**
 * Returns a handler that serves GET `prefix`… from `dir` (`prefix` itself is
 * index.html) and returns false for anything else.
 */
export function createStaticHandler(dir: string, prefix = "/") {
  const root = resolve(dir);
  return (req: Request, res: Response): boolean => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (req.method !== "GET" || !path.startsWith(prefix)) return false;
    const rest = path.slice(prefix.length);
    const file = resolve(join(root, rest === "" ? "index.html" : rest));
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return true;
    }
    res.writeHead(200, {
      "content-type": contentTypes[extname(file)] ?? "application/octet-stream",
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    });
    createReadStream(file).pipe(res);
    return true;
  };
}
