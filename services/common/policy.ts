/**
 * The authorization policy: which identities are admins, and which may
 * request data of which experiment. A YAML (or JSON) file:
 *
 *   admins: [user/operator]
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
  experiments: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), z.array(z.string())).default({}),
});

/** A loaded policy. */
export class Policy {
  readonly #admins: Set<string>;
  readonly #experiments: Map<string, Set<string>>;

  constructor(admins: Iterable<string>, experiments: Record<string, Iterable<string>> = {}) {
    this.#admins = new Set(admins);
    this.#experiments = new Map(Object.entries(experiments).map(([name, ids]) => [name, new Set(ids)]));
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
    return new Policy(parsed.data.admins.map(resolve), experiments);
  }

  /** Loads a policy file. */
  static load(path: string, trustDomain: string): Policy {
    return Policy.parse(readFileSync(path, "utf8"), trustDomain, path);
  }

  isAdmin(identity: Identity | undefined): boolean {
    return identity !== undefined && this.#admins.has(identity.uri);
  }

  /** True when `identity` may request data of `experiment` (admins may request any). */
  mayRequest(identity: Identity, experiment: string): boolean {
    return this.isAdmin(identity) || (this.#experiments.get(experiment)?.has(identity.uri) ?? false);
  }
}
