/** mesh/compose.yaml: every container gets only the certificate directories its command names, its own writable for renewals. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

type Volume = string | { type: string; source: string; target: string; read_only?: boolean; volume?: { subpath?: string } };
const compose = parse(readFileSync(fileURLToPath(new URL("../../mesh/compose.yaml", import.meta.url)), "utf8")) as {
  services: Record<
    string,
    { command?: string[]; entrypoint?: string[]; volumes?: Volume[]; healthcheck?: { test: string[] }; depends_on?: Record<string, { condition: string }> }
  >;
};

describe("mesh/compose.yaml", () => {
  it("mounts each service's own certificates only, writable for its renewals, and the whole certs volume in pki alone", () => {
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
      const named = [...words.matchAll(/--cert-dir[ ,]+(\/certs\/[a-z0-9-]+)/g)].map((m) => m[1]);
      const mounted = certMounts.map((v) => (v as Exclude<Volume, string>).target);
      for (const dir of named) expect(mounted, `${name} names ${dir}`).toContain(dir);
      // A service renews its certificate into its own --cert-dir, so that mount is writable; any
      // other (the producer's in the jobs container, pki's front certificate in front-tls) is read-only.
      for (const v of certMounts as Exclude<Volume, string>[]) {
        if (named.includes(v.target)) expect(v.read_only, `${name}: its own ${v.target} must be writable, for renewals`).toBeFalsy();
        else expect(v.read_only, `${name}: ${v.target} is not its own, so read-only`).toBe(true);
      }
    }
    // Every service with a certificate directory of its own, and each in a directory no other container writes.
    const owners = new Map<string, string>();
    for (const [name, service] of Object.entries(compose.services)) {
      for (const v of (service.volumes ?? []) as Exclude<Volume, string>[]) {
        if (typeof v !== "object" || v.source !== "certs" || v.read_only) continue;
        expect(owners.get(v.volume!.subpath!), `${name} and ${owners.get(v.volume!.subpath!)} both write ${v.volume!.subpath}`).toBeUndefined();
        owners.set(v.volume!.subpath!, name);
      }
    }
    expect([...owners.keys()].sort()).toEqual(["buffer", "buffer-1", "buffer-2", "jobs", "producer", "request"]);
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
