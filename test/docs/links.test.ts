/**
 * The documentation holds together: the README stays short, and every
 * relative link in it and in the guides it leads to resolves to a file or
 * directory of the repository (and an `#anchor` to a heading of that file).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");

function anchors(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#+ (.+)$/gm)].map((m) => anchorOf(m[1]!)));
}

/** The relative links of a markdown file, outside code blocks. */
function links(file: string): string[] {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^(https?:|mailto:)/.test(t));
}

const guides = ["README.md", "bench/README.md", "certs/README.md", ...readdirSync(join(root, "docs")).map((f) => `docs/${f}`)].filter(
  (f) => f.endsWith(".md") && existsSync(join(root, f)),
);

describe("the documentation", () => {
  it("keeps the README at most 300 lines", () => {
    expect(readFileSync(join(root, "README.md"), "utf8").split("\n").length).toBeLessThanOrEqual(300);
  });

  it("has guides to check", () => {
    expect(guides.length).toBeGreaterThan(5);
  });

  for (const guide of guides) {
    it(`resolves every relative link in ${guide}`, () => {
      const file = join(root, guide);
      const broken: string[] = [];
      for (const link of links(file)) {
        const [path, anchor] = link.split("#", 2) as [string, string | undefined];
        const target = path ? join(dirname(file), path) : file;
        if (!existsSync(target)) {
          broken.push(`${link} (no ${relative(root, target)})`);
          continue;
        }
        if (anchor && statSync(target).isFile() && target.endsWith(".md") && !anchors(target).has(anchor)) broken.push(`${link} (no heading #${anchor})`);
      }
      expect(broken).toEqual([]);
    });
  }
});
