import { describe, expect, it } from "vitest";
import { identityFromSubjectAltName, parseIdentity, resolveIdentity } from "../../services/common/identity.js";
import { formatXfcc, parseXfcc } from "../../services/common/xfcc.js";

describe("identities", () => {
  it("parses user and service SPIFFE IDs and rejects everything else", () => {
    expect(parseIdentity("spiffe://slac.stanford.edu/user/alice")).toEqual({
      uri: "spiffe://slac.stanford.edu/user/alice",
      trustDomain: "slac.stanford.edu",
      kind: "user",
      name: "alice",
    });
    expect(parseIdentity("spiffe://d/service/buffer-0")?.kind).toBe("service");
    for (const bad of [
      "spiffe://d/admin/alice",
      "spiffe://d/user/",
      "spiffe://d/user/Alice",
      "spiffe://d/user/a/b",
      "https://d/user/alice",
      "spiffe://D_/user/alice",
      `spiffe://d/user/${"a".repeat(64)}`,
    ]) {
      expect(parseIdentity(bad), bad).toBeUndefined();
    }
  });

  it("resolves short forms in a trust domain and refuses other domains with a helpful message", () => {
    expect(resolveIdentity("user/bob", "lcls.local").uri).toBe("spiffe://lcls.local/user/bob");
    expect(() => resolveIdentity("spiffe://other/user/bob", "lcls.local")).toThrow(/outside the trust domain/);
    expect(() => resolveIdentity("bob", "lcls.local")).toThrow(/use user\/NAME or service\/NAME/);
  });

  it("finds exactly one identity of the trust domain among a certificate's SANs", () => {
    const san = "DNS:buffer.local, URI:spiffe://other/user/x, URI:spiffe://lcls.local/service/buffer, IP Address:127.0.0.1";
    expect(identityFromSubjectAltName(san, "lcls.local")?.uri).toBe("spiffe://lcls.local/service/buffer");
    expect(identityFromSubjectAltName("DNS:x", "lcls.local")).toBeUndefined();
    expect(identityFromSubjectAltName("URI:spiffe://lcls.local/user/a, URI:spiffe://lcls.local/user/b", "lcls.local")).toBeUndefined();
  });
});

describe("x-forwarded-client-cert", () => {
  it("parses Envoy's format with quoted values and several elements", () => {
    const header =
      'By=spiffe://d/service/request;Hash=abc;Cert="-----BEGIN%20CERTIFICATE-----%0AMII;x,y=\\"z\\"";URI=spiffe://d/user/alice,By=spiffe://d/service/b;URI=spiffe://d/user/bob;DNS=a;DNS=b';
    const [first, second] = parseXfcc(header);
    expect(first).toEqual({
      By: ["spiffe://d/service/request"],
      Hash: ["abc"],
      Cert: ['-----BEGIN%20CERTIFICATE-----%0AMII;x,y="z"'],
      URI: ["spiffe://d/user/alice"],
    });
    expect(second).toEqual({ By: ["spiffe://d/service/b"], URI: ["spiffe://d/user/bob"], DNS: ["a", "b"] });
  });

  it("round-trips what it formats", () => {
    const element = { Hash: ["00"], Cert: ['a;b,c="d"'], URI: ["spiffe://d/user/alice"] };
    expect(parseXfcc(formatXfcc(element))).toEqual([element]);
  });

  it("rejects unbalanced quotes", () => {
    expect(() => parseXfcc('URI="spiffe://d/user/alice')).toThrow(/unbalanced/);
  });
});
