/**
 * lclstreamer's Psana2EventSource: LCLS-II XTC2 runs read by the real psana,
 * in a Python reader process per producer rank (psana_reader.py), whose
 * arrays arrive as their bytes in memory shared with it (or on a pipe, read
 * into the memory the event's typed arrays view): no per-element conversion.
 * The reader dies with its rank.
 */
import { type ChildProcessByStdio, execFile, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, constants, existsSync, ftruncateSync, mkdtempSync, openSync, read, readdirSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { AsyncQueue } from "../../common/async-queue.js";
import { nativeAddon } from "../../common/native-stream.js";
import { ConfigError, type DataSourceConfig, type ProducerConfig } from "../config.js";
import type { DetectorEvent, EventSource, FieldInfo } from "../event.js";
import { type Dtype, type NdArray, size as elements, typedView, zeros } from "../ndarray.js";
import { randomArrays, randomFields } from "./internal.js";

/** What psana reads: the run's files, and at most how many events. */
export interface Psana2Run {
  files: string[];
  maxEvents: number;
}

/** psana2's epoch (1990-01-01) in Unix seconds: its timestamps count from there, seconds high, nanoseconds low. */
const psanaEpochSeconds = 631_152_000n;

/** The Unix time in ns of a psana2 timestamp. */
export function unixNsOfPsanaTimestamp(t: bigint): bigint {
  return ((t >> 32n) + psanaEpochSeconds) * 1_000_000_000n + (t & 0xffff_ffffn);
}

/**
 * The run a source_identifier names, as lclstreamer's Psana2EventSource reads
 * it (items separated by commas): `files=PATH` or `exp=EXP,run=N,dir=DIR`
 * (resolved offline on psana's file names, DIR/EXP-rNNNN-sNNN-cNNN.xtc2),
 * and `max_events=N`.
 */
export function parseSourceIdentifier(identifier: string): Psana2Run {
  const items = new Map<string, string>();
  const problem = (message: string) => new ConfigError([{ path: "source_identifier", message }], "the psana2 source");
  for (const item of identifier
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [key, ...rest] = item.split("=");
    const value = rest.join("=");
    if (!key || !value) throw problem(`"${item}" is not key=value; write files=PATH or exp=EXP,run=N,dir=DIR`);
    if (["shmem", "drp", "live", "ffb"].includes(key)) {
      throw problem(`${key}= reads a live DAQ, which this producer cannot reach; give a recorded run (files= or exp=,run=,dir=)`);
    }
    if (!["files", "exp", "run", "dir", "max_events"].includes(key)) throw problem(`${key}= is not known; use files=, exp=, run=, dir= and max_events=`);
    items.set(key, value);
  }
  const maxEvents = items.has("max_events") ? Number(items.get("max_events")) : 0;
  if (!Number.isInteger(maxEvents) || maxEvents < 0) throw problem(`max_events=${items.get("max_events")} is not a count of events`);
  if (items.has("files")) return { files: [resolve(items.get("files")!)], maxEvents };
  const exp = items.get("exp");
  const runNumber = Number(items.get("run"));
  const dir = items.get("dir");
  if (!exp || !Number.isInteger(runNumber) || !dir) {
    throw problem("name the run by files=PATH, or by exp=EXP,run=N,dir=DIR (the logbook is not asked: dir= is where the run's .xtc2 files are)");
  }
  const prefix = `${exp}-r${String(runNumber).padStart(4, "0")}-s`;
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.startsWith(prefix) && /-s\d+-c\d+\.xtc2$/.test(f))
        .sort()
        .map((f) => resolve(dir, f))
    : [];
  if (!files.length) throw problem(`no files ${dir}/${prefix}*-c*.xtc2 for run ${runNumber} of ${exp}`);
  return { files, maxEvents };
}

/** The Python that runs psana: $LCLSTREAM_PSANA_PYTHON, the project's own environment, or python3. */
export function psanaPython(): string {
  if (process.env.LCLSTREAM_PSANA_PYTHON) return process.env.LCLSTREAM_PSANA_PYTHON;
  const own = fileURLToPath(
    new URL(
      existsSync(new URL("../../../package.json", import.meta.url)) ? "../../../.tools/psana/bin/python" : "../../../../.tools/psana/bin/python",
      import.meta.url,
    ),
  );
  return existsSync(own) ? own : "python3";
}

/** The reader script, beside this module in the source tree (this module may run from dist/). */
const readerScript = fileURLToPath(
  new URL(
    existsSync(new URL("./psana_reader.py", import.meta.url)) ? "./psana_reader.py" : "../../../../services/producer/sources/psana_reader.py",
    import.meta.url,
  ),
);

/** Which events a rank reads: every `ranks`-th from `start`, from the `rank`-th on. */
export type RankShare = { rank: number; ranks: number; start: number };

type ReaderSpec = {
  files: string[];
  max_events: number;
  source_identifier: string;
  sources: object[];
  rank: number;
  ranks: number;
  start: number;
  probe?: boolean;
  /** The size of the memory shared on the reader's fd 3, when there is one. */
  ring?: number;
};

/** A header and the payload its sizes `n` describe. */
type Frame = { header: Header; payload: Buffer };

interface Header {
  fields?: ({ name: string; dtype: Dtype; shape: number[] } | { name: string; text: true })[];
  run?: { expt: string; runnum: number; timestamp: number };
  i?: number;
  /** The psana timestamp, as a string (it needs all 64 bits). */
  t?: string;
  n?: number[];
  /** Where in the shared memory the event's bytes are, when they are not on the pipe. */
  at?: number;
  text?: Record<string, string[]>;
  end?: boolean;
}

/** fs.read as a promise: the bytes read (0 at the end of the pipe). */
const readInto = (fd: number, into: Buffer, at: number): Promise<number> =>
  new Promise((done, fail) => read(fd, into, at, into.length - at, null, (error, n) => (error ? fail(error) : done(n))));

/** The native addon that maps memory shared with another process. */
type SharedMemoryAddon = { mapShared(fd: number, length: number): ArrayBuffer };

/**
 * Memory to share with a reader process: a file in /dev/shm, unlinked at
 * once, mapped here by the native addon. Undefined where either is missing
 * (or with LCLSTREAM_NATIVE=0): frames then come on the pipe alone.
 */
function sharedMemory(bytes: number): { fd: number; memory: Buffer } | undefined {
  const addon = process.env.LCLSTREAM_NATIVE === "0" ? undefined : nativeAddon<SharedMemoryAddon>("lclstream_shared_memory");
  if (!addon) return undefined;
  const path = join("/dev/shm", `lclstream-psana-${randomUUID()}`);
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    unlinkSync(path);
    ftruncateSync(fd, bytes);
    return { fd, memory: Buffer.from(addon.mapShared(fd, bytes)) };
  } catch {
    if (fd !== undefined) closeSync(fd);
    rmSync(path, { force: true });
    return undefined;
  }
}

/**
 * A reader process and the frames it writes. Each event's bytes are in memory
 * shared with it (`ring`), which the producer reads in place and gives back by
 * offset on the reader's stdin. Frames come on a real pipe (a FIFO
 * made for it and unlinked at once; the child's stdout through libuv would be
 * a socket read in 64 KiB chunks), with Linux's 1 MiB pipe buffer, read by
 * fs.read straight into each payload's own memory: no chunks to gather, no
 * copy, a few reads a frame.
 */
class Reader {
  readonly child: ChildProcessByStdio<Writable, null, Readable>;
  #stderr = "";
  readonly #exited: Promise<number | null>;
  /** The pipe's reading end; closed once no read is in flight (closing under a read could read another file that took its number). */
  readonly #fd: number;
  #reading = false;
  #closed = false;
  /** Memory shared with the reader; undefined when frames carry their bytes on the pipe. */
  readonly #ring: Buffer | undefined;

  constructor(spec: ReaderSpec) {
    const dir = mkdtempSync(join(tmpdir(), "lclstream-psana-"));
    const fifo = join(dir, "frames");
    let writing: number;
    try {
      execFileSync("mkfifo", ["-m", "600", fifo]);
      // Opened in this order none of them blocks: a non-blocking reader lets the writer open, the writer the blocking reader.
      const opening = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      writing = openSync(fifo, constants.O_WRONLY);
      this.#fd = openSync(fifo, constants.O_RDONLY);
      closeSync(opening);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const shared = spec.probe ? undefined : sharedMemory(ringBytes);
    this.#ring = shared?.memory;
    try {
      this.child = spawn(psanaPython(), [readerScript, JSON.stringify(shared ? { ...spec, ring: ringBytes } : spec)], {
        stdio: shared ? ["pipe", writing, "pipe", shared.fd] : ["pipe", writing, "pipe"],
        env: { ...process.env, PS_PARALLEL: "none" },
      }) as ChildProcessByStdio<Writable, null, Readable>;
    } finally {
      closeSync(writing); // the child's is now the only writer: its exit ends the pipe
      if (shared) closeSync(shared.fd); // the mappings keep the memory
    }
    this.child.stdin.on("error", () => {}); // a reader gone: its exit says why
    this.child.stderr.setEncoding("utf8").on("data", (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-8192);
    });
    this.#exited = new Promise((resolve) => {
      this.child.once("error", (e) => {
        this.#stderr += `\npsana: cannot start ${psanaPython()} (${e.message}): set LCLSTREAM_PSANA_PYTHON, or run scripts/install-system-deps.sh`;
        resolve(null);
      });
      this.child.once("close", resolve);
    });
  }

  /**
   * Payloads given back (an event's release) to read later frames into. A new
   * 4 MiB buffer a frame makes V8 collect garbage every few frames (external
   * memory), which cost the rank more CPU than reading and sending did.
   */
  readonly #free: Buffer[] = [];
  #freeBytes = 0;

  /** Takes back a frame's payload nothing reads any more: the reader's to reuse, if it is in the shared memory. */
  giveBack({ header, payload }: Frame) {
    if (header.at !== undefined) {
      if (this.child.stdin.writable) this.child.stdin.write(`${header.at}\n`);
      return;
    }
    if (this.#closed || this.#freeBytes + payload.length > maxFreeBytes) return;
    this.#free.push(payload);
    this.#freeBytes += payload.length;
  }

  /** The next n bytes of the pipe; in memory of their own (`own`: a given-back payload's, or new). Undefined at its end. */
  async #next(n: number, own = false): Promise<Buffer | undefined> {
    let out: Buffer;
    const reused = own ? this.#free.findIndex((b) => b.length === n) : -1;
    if (reused >= 0) {
      out = this.#free.splice(reused, 1)[0]!;
      this.#freeBytes -= n;
    } else out = own ? Buffer.allocUnsafeSlow(n) : Buffer.allocUnsafe(n);
    for (let at = 0; at < n; ) {
      const got = await readInto(this.#fd, out, at);
      if (!got) return undefined;
      at += got;
    }
    return out;
  }

  /** The next frame on the pipe; undefined at its end. */
  async #frame(): Promise<Frame | undefined> {
    const length = await this.#next(4);
    const text = length && (await this.#next(length.readUInt32LE(0)));
    if (!text) return undefined;
    const header = JSON.parse(text.toString("utf8")) as Header;
    const want = (header.n ?? []).reduce((a, b) => a + Math.max(0, b), 0);
    if (header.at !== undefined && this.#ring) return { header, payload: this.#ring.subarray(header.at, header.at + want) };
    const payload = want ? await this.#next(want, true) : Buffer.alloc(0);
    return payload && { header, payload };
  }

  /**
   * Frames (header and payload), read up to `aheadBytes` ahead of the caller,
   * so that psana goes on reading while the rank encodes and publishes (the
   * pipe alone holds 1 MiB); throws the reader's own last line when it fails.
   */
  async *frames(aheadBytes = 0): AsyncGenerator<Frame> {
    const queue = new AsyncQueue<Frame>();
    let held = 0;
    let taken: (() => void) | undefined;
    let stopped = false;
    const pump = async () => {
      this.#reading = true;
      try {
        for (let frame = await this.#frame(); frame; frame = await this.#frame()) {
          queue.push(frame);
          held += frame.payload.length;
          if (frame.header.end) return queue.close();
          while (held > aheadBytes && !stopped) await new Promise<void>((resolve) => (taken = resolve));
          if (stopped) return;
        }
      } finally {
        this.#reading = false;
        this.#closeFd();
      }
      queue.fail(await this.#failure());
    };
    pump().catch((error) => queue.fail(error));
    try {
      for await (const frame of queue.drain()) {
        held -= frame.payload.length;
        taken?.();
        yield frame;
      }
    } finally {
      stopped = true;
      taken?.();
    }
  }

  /** Why the pipe ended early: the reader's own last line, else its exit. */
  async #failure(): Promise<Error> {
    const code = await this.#exited;
    const last = this.#stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("psana: "))
      .at(-1);
    return new Error(last ?? `the psana reader stopped (exit ${code}): ${this.#stderr.trim().split("\n").at(-1) ?? "no message"}`);
  }

  #closeFd() {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }

  close() {
    this.child.stdin.end();
    if (this.child.exitCode === null) this.child.kill(); // a read under way then ends with the pipe
    if (!this.#reading) this.#closeFd();
  }
}

/** What a psana data source reads, in words. */
function describe(s: DataSourceConfig): string {
  if (s.type === "Psana2DetectorInterface") return `${s.psana_name} ${[s.psana_fields ?? "(EPICS PV)"].flat().join(", ")}`;
  return s.type === "Psana2Timestamp" ? "the psana timestamp" : s.type;
}

/** The psana data sources of a config, as the reader takes them; the others are made here. */
function psanaSources(config: ProducerConfig): object[] {
  return Object.entries(config.data_sources)
    .filter(([, s]) => s.type.startsWith("Psana2"))
    .map(([name, s]) => ({ name, ...(s as DataSourceConfig) }));
}

/** How far a rank's reader runs ahead of its pipeline: a few 4 MiB frames. */
const readAheadBytes = 32 << 20;
/** Given-back payloads kept for reuse: the read-ahead, and what the buffer handler keeps until confirmed (64 MiB). */
const maxFreeBytes = 128 << 20;
/** The memory shared with a reader: as much (an event that does not fit in what is free comes on the pipe). */
const ringBytes = maxFreeBytes;

export class Psana2Source implements EventSource {
  /** Unknown until the run is read through. */
  readonly eventCount = 0;
  readonly #fields: FieldInfo[];
  readonly #spec: Omit<ReaderSpec, "rank" | "ranks" | "start">;
  readonly #config: ProducerConfig;
  #readers = new Set<Reader>();
  /** The reader open() started for a rank, its first frame read, until that rank's events() takes it. */
  #kept: (RankShare & { reader: Reader; frames: AsyncGenerator<Frame> }) | undefined;

  private constructor(config: ProducerConfig, spec: Omit<ReaderSpec, "rank" | "ranks" | "start">, fields: FieldInfo[]) {
    this.#config = config;
    this.#spec = spec;
    this.#fields = fields;
  }

  /**
   * Opens the run: its fields' types and shapes come from its first events.
   * Given the rank that will read it, the reader that found them goes on to
   * read that rank's events (psana's start, about 0.4 s, paid once).
   */
  static async open(config: ProducerConfig, reading?: RankShare): Promise<Psana2Source> {
    const run = parseSourceIdentifier(config.source_identifier);
    const spec = { files: run.files, max_events: run.maxEvents, source_identifier: config.source_identifier, sources: psanaSources(config) };
    const reader = new Reader({ ...spec, ...(reading ?? { rank: 0, ranks: 1, start: 0, probe: true }) });
    const frames = reader.frames(readAheadBytes);
    try {
      const next = await frames.next();
      const first = next.done ? undefined : next.value;
      const described = first?.header.fields;
      if (!described) throw new Error("psana: the reader described no fields");
      const fields: FieldInfo[] = described.flatMap((f) =>
        "text" in f
          ? []
          : [
              {
                name: f.name,
                dtype: f.dtype,
                shape: f.shape,
                description: `${describe(config.data_sources[f.name]!)} in ${first.header.run?.expt} run ${first.header.run?.runnum}`,
              },
            ],
      );
      fields.push(...randomFields(config));
      const source = new Psana2Source(config, spec, fields);
      if (reading) source.#kept = { ...reading, reader, frames };
      else reader.close();
      return source;
    } catch (error) {
      reader.close();
      throw new ConfigError([{ path: "event_source", message: (error as Error).message.replace(/^psana: /, "") }], "the psana2 source");
    }
  }

  fields(): FieldInfo[] {
    return this.#fields;
  }

  async *events(rank: number, ranks: number, start: number, signal: AbortSignal): AsyncGenerator<DetectorEvent> {
    const kept = this.#kept;
    this.#kept = undefined;
    const same = kept && kept.rank === rank && kept.ranks === ranks && kept.start === start ? kept : undefined;
    if (!same) kept?.reader.close();
    const reader = same?.reader ?? new Reader({ ...this.#spec, rank, ranks, start });
    const frames = same?.frames ?? reader.frames(readAheadBytes);
    this.#readers.add(reader);
    const onAbort = () => reader.close();
    signal.addEventListener("abort", onAbort, { once: true });
    // Each field's bytes per event, as the first events gave them.
    const byName = new Map(this.#fields.map((f) => [f.name, { ...f, bytes: elements(f.shape) * zeros(f.dtype, []).data.BYTES_PER_ELEMENT }]));
    try {
      for await (const frame of frames) {
        const { header, payload } = frame;
        if (header.fields) continue;
        if (header.end) return;
        signal.throwIfAborted();
        const index = header.i!;
        const fields: Record<string, NdArray> = randomArrays(this.#config, index);
        let at = 0;
        // Sizes come per psana data source in config order; -1 (None, or text) carries no bytes.
        for (const [k, spec] of (this.#spec.sources as { name: string }[]).entries()) {
          const size = header.n![k]!;
          const info = byName.get(spec.name);
          if (!info || size < 0) continue;
          if (info.bytes !== size) {
            throw new Error(`psana: event ${header.i}: ${spec.name} has ${size} bytes where the first events had ${info.bytes} (${info.dtype}[${info.shape}])`);
          }
          // A view of the payload where aligned (it is its own memory), else a copy.
          fields[spec.name] = { dtype: info.dtype, shape: info.shape, data: typedView(info.dtype, payload.subarray(at, at + size)) };
          at += size;
        }
        yield { index, timeNs: unixNsOfPsanaTimestamp(BigInt(header.t!)), fields, text: header.text, release: () => reader.giveBack(frame) };
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      reader.close();
      this.#readers.delete(reader);
    }
  }

  close(): void {
    this.#kept?.reader.close();
    for (const r of this.#readers) r.close();
  }
}

/** An XTC2 run found under a data directory, with its detectors as psana lists them. */
export interface CatalogRun {
  experiment: string;
  run: number;
  dir: string;
  files: string[];
  /** psana's xtcinfo: detector, type, algorithm, version. */
  detectors: { name: string; type: string; algorithm: string; version: string }[];
}

const xtc2Name = /^(.+)-r(\d{4})-s\d{3}-c\d{3}\.xtc2$/;
const described = new Map<string, Promise<CatalogRun["detectors"] | undefined>>();

/** psana's description of a run's files, once per set of files as they are (names and modification times). */
function describeRun(files: string[]): Promise<CatalogRun["detectors"] | undefined> {
  const key = files.map((f) => `${f}@${statSync(f).mtimeMs}`).join("|");
  let known = described.get(key);
  if (!known) {
    const spec = JSON.stringify({ files, source_identifier: "", sources: [], describe: true });
    known = new Promise((done) =>
      execFile(psanaPython(), [readerScript, spec], { timeout: 60_000, env: { ...process.env, PS_PARALLEL: "none" } }, (error, stdout) => {
        if (error) return done(undefined);
        const info = JSON.parse(stdout) as { xtcinfo: string[][] };
        done(info.xtcinfo.map(([name, type, algorithm, version]) => ({ name: name!, type: type!, algorithm: algorithm!, version: version! })));
      }),
    );
    described.set(key, known);
  }
  return known;
}

/** The XTC2 runs under `roots` (three directories deep at most), named as psana names their files, with their detectors. */
export async function psanaRunsUnder(roots: string[]): Promise<CatalogRun[]> {
  const runs = new Map<string, Omit<CatalogRun, "detectors">>();
  const walk = (dir: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory() && depth < 3) walk(join(dir, e.name), depth + 1);
      const m = e.isFile() ? xtc2Name.exec(e.name) : null;
      if (!m) continue;
      const key = `${dir}|${m[1]}|${m[2]}`;
      const run = runs.get(key) ?? { experiment: m[1]!, run: Number(m[2]), dir, files: [] };
      run.files.push(join(dir, e.name));
      runs.set(key, run);
    }
  };
  for (const root of roots) walk(resolve(root), 0);
  const found = await Promise.all(
    [...runs.values()].map(async (r) => {
      r.files.sort();
      const detectors = await describeRun(r.files);
      return detectors ? { ...r, detectors } : undefined;
    }),
  );
  return found.filter((r): r is CatalogRun => r !== undefined);
}
