/** mesh/compose.yaml: every container gets only the certificate directories its command names. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

type Volume = string | { type: string; source: string; target: string; volume?: { subpath?: string } };
const compose = parse(readFileSync(fileURLToPath(new URL("../../mesh/compose.yaml", import.meta.url)), "utf8")) as {
  services: Record<
    string,
    { command?: string[]; entrypoint?: string[]; volumes?: Volume[]; healthcheck?: { test: string[] }; depends_on?: Record<string, { condition: string }> }
  >;
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

  it("checks each service's health by gRPC health, and starts the front door only once they are healthy", () => {
    const services = Object.entries(compose.services).filter(([name]) => !["pki", "envoy", "front-tls"].includes(name));
    for (const [name, service] of services) {
      expect(service.healthcheck, name).toBeDefined();
      if (name !== "ca") expect(service.healthcheck!.test.slice(0, 3), name).toEqual(["CMD", "lclstream", "health"]);
    }
    const front = compose.services.envoy!.depends_on!;
    for (const [name] of services.filter(([n]) => n !== "ca")) expect(front[name]?.condition, name).toBe("service_healthy");
    expect(compose.services.request!.depends_on!.jobs!.condition).toBe("service_healthy");
  });
});
