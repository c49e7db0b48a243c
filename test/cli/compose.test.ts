/** mesh/compose.yaml: every container gets only the certificate directories its command names. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

type Volume = string | { type: string; source: string; target: string; volume?: { subpath?: string } };
const compose = parse(readFileSync(fileURLToPath(new URL("../../mesh/compose.yaml", import.meta.url)), "utf8")) as {
  services: Record<string, { command?: string[]; entrypoint?: string[]; volumes?: Volume[] }>;
};

describe("mesh/compose.yaml", () => {
  it("mounts each service's own certificates only, and the whole certs volume in pki alone", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      const certMounts = (service.volumes ?? []).filter((v) => (typeof v === "string" ? v.startsWith("certs:") : v.source === "certs"));
      if (name === "pki") {
        expect(certMounts).toEqual(["certs:/certs"]);
        continue;
      }
      // Never the whole volume: a subpath each, mounted where its name says.
      for (const v of certMounts) {
        expect(typeof v, `${name} mounts the whole certs volume`).toBe("object");
        const m = v as Exclude<Volume, string>;
        expect(m.target.endsWith(`/${m.volume?.subpath}`), `${name}: ${m.target}`).toBe(true);
      }
      // And every cert directory the command names is one of them.
      const words = [...(service.command ?? []), ...(service.entrypoint ?? [])].join(" ");
      const named = [...words.matchAll(/--cert-dir[ ,]+(\/certs\/[a-z]+)/g)].map((m) => m[1]);
      const mounted = certMounts.map((v) => (v as Exclude<Volume, string>).target);
      for (const dir of named) expect(mounted, `${name} names ${dir}`).toContain(dir);
    }
    // The producer jobs the request service submits run in the jobs container, with the producer's certificate.
    const producerDir = /--producer-cert-dir[ ,]+(\S+?),?$/m.exec(compose.services.request!.command!.join(" ").replace(/ --/g, "\n--"))?.[1];
    expect(producerDir).toBe("/certs/producer");
    expect(compose.services.jobs!.volumes!.map((v) => (typeof v === "string" ? v : v.target))).toContain(producerDir);
  });
});
