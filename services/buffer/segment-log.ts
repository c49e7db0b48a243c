/**
 * The on-disk log of a durable stream: batches in segment files, and a
 * control file of producers' done and groups' acknowledgements. A record is
 * written before the change it records takes effect, so a buffer killed at
 * any moment restarts with everything it had accepted; a torn record at the
 * end of a file (the write the kill interrupted) is detected by its CRC and
 * cut off. Pages reach the disk by a periodic fdatasync (group commit).
 *
 *   segments/<first seq>.seg  [u32 length][u32 crc][u64 seq][u64 producer seq][u32 rank][u32 events][payload]
 *   control.log               [u32 crc][u8 type][u8 0][u16 group][u64 a][u64 b][u32 rank][u32 c]
 *
 * Control records: a rank's done, a group's ack, and, before a segment file
 * is deleted, a checkpoint of the counters its batches carried (the stream's
 * next seq and bytes, each rank's next seq, events and batches), so sequences
 * and totals survive the files that held them.
 */
import { ByteParts } from "../common/byte-parts.js";
import { closeSync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync, writevSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Checkpoint, Entry, LogReplay, StreamLog } from "./buffer-stream.js";

const batchHeaderBytes = 32;
const controlBytes = 32;
const controlDone = 1;
const controlAck = 2;
const controlStreamCheckpoint = 3;
const controlRankCheckpoint = 4;

export interface SegmentLogOptions {
  /** Roll to a new segment file past this size; default 64 MiB. */
  segmentBytes?: number;
  /** How often written records are synced to disk; default 100 ms. */
  syncIntervalMs?: number;
}

export class SegmentLog implements StreamLog {
  readonly #dir: string;
  readonly #segmentBytes: number;
  /** First seq of each segment, ascending, and how many of its batches are not yet freed. */
  readonly #segments: { firstSeq: number; live: number }[] = [];
  #segmentFd: number | undefined;
  #segmentSize = 0;
  readonly #controlFd: number;
  #dirty = new Set<number>();
  readonly #timer: NodeJS.Timeout;

  /** Opens (or creates) the log in `dir`, returning what it held. */
  static open(dir: string, options: SegmentLogOptions = {}): { log: SegmentLog; replay: LogReplay } {
    mkdirSync(join(dir, "segments"), { recursive: true, mode: 0o700 });
    const replay: LogReplay = { batches: [], done: [], acks: [], checkpoint: undefined };
    const firstSeqs = readdirSync(join(dir, "segments"))
      .filter((f) => /^\d+\.seg$/.test(f))
      .map((f) => Number(f.slice(0, -4)))
      .sort((a, b) => a - b);
    const segments: { firstSeq: number; live: number }[] = [];
    for (const firstSeq of firstSeqs) {
      const path = join(dir, "segments", `${firstSeq}.seg`);
      const batches = readSegment(path);
      replay.batches.push(...batches);
      segments.push({ firstSeq, live: batches.length });
    }
    readControl(join(dir, "control.log"), replay);
    const log = new SegmentLog(dir, segments, options);
    return { log, replay };
  }

  private constructor(dir: string, segments: { firstSeq: number; live: number }[], options: SegmentLogOptions) {
    this.#dir = dir;
    this.#segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    this.#segments = segments;
    this.#controlFd = openSync(join(dir, "control.log"), "a");
    this.#timer = setInterval(() => this.sync(), options.syncIntervalMs ?? 100);
    this.#timer.unref();
  }

  appendBatch(entry: Entry): void {
    if (this.#segmentFd === undefined || this.#segmentSize >= this.#segmentBytes) this.#roll(entry.seq);
    const header = Buffer.alloc(batchHeaderBytes);
    header.writeUInt32LE(entry.bytes.byteLength, 0);
    header.writeBigUInt64LE(BigInt(entry.seq), 8);
    header.writeBigUInt64LE(entry.producerSeq, 16);
    header.writeUInt32LE(entry.rank, 24);
    header.writeUInt32LE(entry.events, 28);
    let crc = crc32(header.subarray(8));
    for (const part of entry.bytes.parts) crc = crc32(part, crc);
    header.writeUInt32LE(crc, 4);
    writevSync(this.#segmentFd!, [header, ...entry.bytes.parts]);
    this.#segmentSize += batchHeaderBytes + entry.bytes.byteLength;
    this.#segments.at(-1)!.live++;
    this.#dirty.add(this.#segmentFd!);
  }

  appendDone(rank: number, batchCount: number, eventCount: number, skippedEventCount: number): void {
    // The record's last word, unused by done records before, holds the skipped count (0 in older logs).
    this.#control(controlDone, 0, batchCount, eventCount, rank, Math.min(skippedEventCount, 0xffff_ffff));
  }

  appendAck(groupIndex: number, seq: number): void {
    this.#control(controlAck, groupIndex, seq, 0, 0, 0);
  }

  freed(seq: number, checkpoint: () => Checkpoint): void {
    let i = this.#segments.length - 1;
    while (i > 0 && this.#segments[i]!.firstSeq > seq) i--;
    const segment = this.#segments[i];
    if (!segment || --segment.live > 0 || i === this.#segments.length - 1) return;
    // Every batch of an older segment is freed: its file goes, its counters stay.
    const c = checkpoint();
    this.#control(controlStreamCheckpoint, 0, c.nextSeq, c.publishedBytes, 0, 0);
    c.producers.forEach((p, rank) => this.#control(controlRankCheckpoint, 0, Number(p.nextSeq), p.events, rank, p.batches));
    this.sync();
    unlinkSync(join(this.#dir, "segments", `${segment.firstSeq}.seg`));
    this.#segments.splice(i, 1);
  }

  /** Syncs written records to disk. */
  sync(): void {
    for (const fd of this.#dirty) fdatasyncSync(fd);
    this.#dirty.clear();
  }

  close(): void {
    clearInterval(this.#timer);
    this.sync();
    if (this.#segmentFd !== undefined) closeSync(this.#segmentFd);
    closeSync(this.#controlFd);
  }

  /** Closes the log and deletes its files (the stream was deleted). */
  destroy(): void {
    clearInterval(this.#timer);
    if (this.#segmentFd !== undefined) closeSync(this.#segmentFd);
    closeSync(this.#controlFd);
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #roll(firstSeq: number) {
    if (this.#segmentFd !== undefined) {
      fdatasyncSync(this.#segmentFd);
      this.#dirty.delete(this.#segmentFd);
      closeSync(this.#segmentFd);
    }
    this.#segmentFd = openSync(join(this.#dir, "segments", `${firstSeq}.seg`), "a");
    this.#segmentSize = 0;
    this.#segments.push({ firstSeq, live: 0 });
  }

  #control(type: number, group: number, a: number, b: number, rank: number, c: number) {
    const record = Buffer.alloc(controlBytes);
    record.writeUInt8(type, 4);
    record.writeUInt16LE(group, 6);
    record.writeBigUInt64LE(BigInt(a), 8);
    record.writeBigUInt64LE(BigInt(b), 16);
    record.writeUInt32LE(rank, 24);
    record.writeUInt32LE(c, 28);
    record.writeUInt32LE(crc32(record.subarray(4)), 0);
    writeSync(this.#controlFd, record);
    this.#dirty.add(this.#controlFd);
  }
}

/** Reads a segment's batches, cutting off a torn record at its end. */
function readSegment(path: string): LogReplay["batches"] {
  const data = readFileSync(path);
  const batches: LogReplay["batches"] = [];
  let at = 0;
  while (at + batchHeaderBytes <= data.length) {
    const length = data.readUInt32LE(at);
    const end = at + batchHeaderBytes + length;
    if (end > data.length) break;
    const payload = data.subarray(at + batchHeaderBytes, end);
    if (crc32(payload, crc32(data.subarray(at + 8, at + batchHeaderBytes))) !== data.readUInt32LE(at + 4)) break;
    batches.push({
      seq: Number(data.readBigUInt64LE(at + 8)),
      producerSeq: data.readBigUInt64LE(at + 16),
      rank: data.readUInt32LE(at + 24),
      events: data.readUInt32LE(at + 28),
      // A copy, so the file's buffer is not held by the few batches still needed.
      bytes: new ByteParts([new Uint8Array(payload)]),
    });
    at = end;
  }
  if (at < data.length) truncate(path, at);
  return batches;
}

/** Reads the control file into `replay`: done records, acks, the last checkpoint. */
function readControl(path: string, replay: LogReplay): void {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    return;
  }
  let at = 0;
  for (; at + controlBytes <= data.length; at += controlBytes) {
    const record = data.subarray(at, at + controlBytes);
    if (crc32(record.subarray(4)) !== record.readUInt32LE(0)) break;
    const type = record.readUInt8(4);
    const a = Number(record.readBigUInt64LE(8));
    const b = Number(record.readBigUInt64LE(16));
    const rank = record.readUInt32LE(24);
    if (type === controlAck) replay.acks.push({ groupIndex: record.readUInt16LE(6), seq: a });
    else if (type === controlDone) replay.done.push({ rank, batchCount: a, eventCount: b, skippedEventCount: record.readUInt32LE(28) });
    else if (type === controlStreamCheckpoint) replay.checkpoint = { nextSeq: a, publishedBytes: b, producers: [] };
    else if (type === controlRankCheckpoint && replay.checkpoint) {
      replay.checkpoint.producers[rank] = { nextSeq: BigInt(a), events: b, batches: record.readUInt32LE(28) };
    }
  }
  if (at < data.length) truncate(path, at);
}

function truncate(path: string, length: number) {
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, length);
  } finally {
    closeSync(fd);
  }
}
