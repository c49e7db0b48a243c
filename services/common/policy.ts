/**
 * The authorization policy: which identities are admins, and which may
 * request data of which experiment. A YAML (or JSON) file:
 *
 *   admins: [user/operator]
 *   submitters: [service/request]   # may submit jobs to the job queue
 *   experiments:
 *     mfx101: [user/alice, user/bob]
 *
 * Identities may be short (`user/alice`) or full SPIFFE URIs.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { resolveIdentity, type Identity } from "./identity.js";

const policySchema = z.strictObject({
  admins: z.array(z.string()).default([]),
  submitters: z.array(z.string()).default([]),
  experiments: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), z.array(z.string())).default({}),
});

/** A loaded policy. */
export class Policy {
  readonly #admins: Set<string>;
  readonly #submitters: Set<string>;
  readonly #experiments: Map<string, Set<string>>;

  constructor(roles: { admins?: Iterable<string>; submitters?: Iterable<string>; experiments?: Record<string, Iterable<string>> } = {}) {
    this.#admins = new Set(roles.admins);
    this.#submitters = new Set(roles.submitters);
    this.#experiments = new Map(Object.entries(roles.experiments ?? {}).map(([name, ids]) => [name, new Set(ids)]));
  }

  /** Parses a policy document; identities are resolved in `trustDomain`. */
  static parse(text: string, trustDomain: string, source = "policy"): Policy {
    const parsed = policySchema.safeParse(parseYaml(text) ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ");
      throw new Error(`${source} is not a valid policy: ${issues}`);
    }
    const resolve = (id: string) => resolveIdentity(id, trustDomain).uri;
    const experiments = Object.fromEntries(Object.entries(parsed.data.experiments).map(([name, ids]) => [name, ids.map(resolve)]));
    return new Policy({ admins: parsed.data.admins.map(resolve), submitters: parsed.data.submitters.map(resolve), experiments });
  }

  /** Loads a policy file. */
  static load(path: string, trustDomain: string): Policy {
    return Policy.parse(readFileSync(path, "utf8"), trustDomain, path);
  }

  /** The policy a server's config names: a file, or roles given inline (short identities allowed). */
  static fromConfig(config: { policyFile?: string; admins?: string[]; submitters?: string[] }, trustDomain: string): Policy {
    if (config.policyFile) return Policy.load(config.policyFile, trustDomain);
    return Policy.parse(JSON.stringify({ admins: config.admins ?? [], submitters: config.submitters ?? [] }), trustDomain, "the inline policy");
  }

  isAdmin(identity: Identity | undefined): boolean {
    return identity !== undefined && this.#admins.has(identity.uri);
  }

  /** True when `identity` may submit jobs (admins may). */
  maySubmitJobs(identity: Identity): boolean {
    return this.isAdmin(identity) || this.#submitters.has(identity.uri);
  }

  /** True when `identity` may request data of `experiment` (admins may request any). */
  mayRequest(identity: Identity, experiment: string): boolean {
    return this.isAdmin(identity) || (this.#experiments.get(experiment)?.has(identity.uri) ?? false);
  }
}
