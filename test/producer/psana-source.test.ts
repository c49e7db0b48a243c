/** The psana2 source's own logic, without psana: naming a run as lclstreamer's source_identifier does, and psana's timestamps. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConfigError } from "../../services/producer/config.js";
import { parseSourceIdentifier, unixNsOfPsanaTimestamp } from "../../services/producer/sources/psana.js";

describe("a psana2 source_identifier", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lclstream-xtc-"));
    for (const f of ["mfx100852324-r0355-s001-c000.xtc2", "mfx100852324-r0355-s000-c000.xtc2", "mfx100852324-r0356-s000-c000.xtc2", "notes.txt"]) {
      await writeFile(join(dir, f), "");
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const problem = (identifier: string) => {
    try {
      parseSourceIdentifier(identifier);
    } catch (error) {
      return (error as ConfigError).problems[0]!.message;
    }
    throw new Error("accepted");
  };

  it("finds a run's files by exp, run and dir, offline, as psana names them", () => {
    expect(parseSourceIdentifier(`exp=mfx100852324,run=355,dir=${dir}`)).toEqual({
      files: [join(dir, "mfx100852324-r0355-s000-c000.xtc2"), join(dir, "mfx100852324-r0355-s001-c000.xtc2")],
      maxEvents: 0,
    });
  });

  it("takes files= and max_events=", () => {
    expect(parseSourceIdentifier(`files=${join(dir, "a.xtc2")},max_events=12`)).toEqual({ files: [join(dir, "a.xtc2")], maxEvents: 12 });
  });

  it("says what is wrong in one line", () => {
    expect(problem(`exp=mfx100852324,run=357,dir=${dir}`)).toBe(`no files ${dir}/mfx100852324-r0357-s*-c*.xtc2 for run 357 of mfx100852324`);
    expect(problem("exp=mfx100852324,run=355")).toMatch(/^name the run by files=PATH, or by exp=EXP,run=N,dir=DIR/);
    expect(problem("shmem=tmo")).toMatch(/^shmem= reads a live DAQ/);
    expect(problem("files=x.xtc2,colour=blue")).toBe("colour= is not known; use files=, exp=, run=, dir= and max_events=");
    expect(problem("files=x.xtc2,max_events=-3")).toBe("max_events=-3 is not a count of events");
  });
});

describe("psana2 timestamps", () => {
  it("count seconds from 1990 in the high 32 bits and nanoseconds in the low", () => {
    // 2026-01-01T00:00:00.5Z
    const seconds = BigInt(Date.UTC(2026, 0, 1) / 1000) - 631_152_000n;
    expect(unixNsOfPsanaTimestamp((seconds << 32n) | 500_000_000n)).toBe(BigInt(Date.UTC(2026, 0, 1)) * 1_000_000n + 500_000_000n);
  });
});
