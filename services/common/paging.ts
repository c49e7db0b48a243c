/**
 * AIP-158 pagination for List calls: `page_size` (0 means the default, the
 * maximum caps it) and an opaque `page_token` from the previous page.
 */
import { invalidArgument } from "./errors.js";

/** A page request, checked. */
export interface Page {
  offset: number;
  size: number;
}

/** Reads `page_size` and `page_token`; a token not made by {@link nextPageToken} is INVALID_ARGUMENT. */
export function readPage(req: { pageSize: number; pageToken: string }, domain: string, defaultSize = 100, maxSize = 1000): Page {
  const size = req.pageSize <= 0 ? defaultSize : Math.min(req.pageSize, maxSize);
  if (!req.pageToken) return { offset: 0, size };
  const decoded = /^o(\d{1,15})$/.exec(Buffer.from(req.pageToken, "base64url").toString());
  if (!decoded) throw invalidArgument(domain, [{ field: "page_token", description: "not a token from a previous page; start again without one" }]);
  return { offset: Number(decoded[1]), size };
}

/**
 * Slices a result fetched with `size + 1` rows into the page and the token
 * for the next one ("" on the last page).
 */
export function pageOf<T>(rows: T[], page: Page): { items: T[]; nextPageToken: string } {
  const more = rows.length > page.size;
  return {
    items: rows.slice(0, page.size),
    nextPageToken: more ? Buffer.from(`o${page.offset + page.size}`).toString("base64url") : "",
  };
}
