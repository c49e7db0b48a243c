/**
 * The `x-forwarded-client-cert` header in Envoy's format: elements separated by
 * `,`, key=value pairs separated by `;`, values optionally double-quoted
 * (with `\"` escapes). Example:
 * `By=spiffe://d/service/request;Hash=ab12;URI=spiffe://d/user/alice`.
 */

/** The header name, lower-case as HTTP/2 carries it. */
export const xfccHeader = "x-forwarded-client-cert";

/** One element of the header: the certificate of one hop's client. */
export type XfccElement = Record<string, string[]>;

/** Parses the header; throws on a malformed value (unbalanced quotes). */
export function parseXfcc(value: string): XfccElement[] {
  const elements: XfccElement[] = [];
  let element: XfccElement = {};
  let key = "";
  let token = "";
  let inQuotes = false;
  let readingKey = true;
  const endPair = () => {
    const k = key.trim();
    if (k) (element[k] ??= []).push(readingKey ? "" : token);
    key = "";
    token = "";
    readingKey = true;
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (inQuotes) {
      if (c === "\\" && i + 1 < value.length) token += value[++i];
      else if (c === '"') inQuotes = false;
      else token += c;
    } else if (c === '"' && !readingKey) {
      inQuotes = true;
    } else if (c === "=" && readingKey) {
      readingKey = false;
    } else if (c === ";") {
      endPair();
    } else if (c === ",") {
      endPair();
      elements.push(element);
      element = {};
    } else if (readingKey) {
      key += c;
    } else {
      token += c;
    }
  }
  if (inQuotes) throw new Error("unbalanced quotes in x-forwarded-client-cert");
  endPair();
  elements.push(element);
  return elements.filter((e) => Object.keys(e).length > 0);
}

/** Formats one element, quoting values that need it, as Envoy does. */
export function formatXfcc(element: XfccElement): string {
  return Object.entries(element)
    .flatMap(([key, values]) => values.map((v) => (/[,;="\s]/.test(v) ? `${key}="${v.replace(/["\\]/g, "\\$&")}"` : `${key}=${v}`)))
    .join(";");
}
