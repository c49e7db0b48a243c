"""lclstream's psana2 reader: one producer rank's events of an XTC2 run, read
with the real psana, streamed to the producer on stdout.

Started by Psana2Source (psana.ts) with a JSON spec as its only argument. It
reads the data sources as lclstreamer's Psana2DetectorInterface,
Psana2Timestamp and Psana2RunInfo read them, and writes frames of

    u32 little-endian length | JSON header | the arrays' bytes, back to back

first {"fields": [...], "run": {...}} (each field's dtype and shape, from the
first events of the run), then one frame per event of this rank
{"i": index, "t": psana timestamp (a string: it takes 64 bits), "n": [bytes of each field, -1 when None],
"text": {name: [str, ...]}}, and {"end": true} at the end. Arrays go out as
their own memory (no per-element conversion). A failure is one line on
stderr and exit status 1. The reader exits when its producer goes away
(stdin closes).

Given a ring (spec "ring": its size in bytes, the memory on fd 3, shared with
the producer), an event's arrays are written there instead, and its frame says
where ("at": offset; no bytes follow the header). The producer gives each
event's bytes back by writing their offset and a newline on stdin. While it
holds too much for the next event to fit, that event goes through the pipe.
"""

import collections
import json
import mmap
import os
import struct
import sys
import threading

DTYPES = {"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"}


def fail(message):
    sys.stderr.write(f"psana: {message}\n")
    sys.stderr.flush()
    os._exit(1)


class Ring:
    """Memory shared with the producer, given out in turn to events' bytes and given back by offset, in any order."""

    def __init__(self, fd, size):
        self.memory = memoryview(mmap.mmap(fd, size))
        self.size = size
        self.head = 0  # where the last piece given out ends
        self.out = collections.deque()  # offsets given out, oldest first
        self.back = set()  # offsets given back but not yet the oldest out
        self.lock = threading.Lock()

    def take(self, n):
        """The offset of n bytes nothing holds, or None when they do not fit now."""
        n = (n + 63) & ~63  # every event's bytes 64-byte aligned, as typed arrays want them
        with self.lock:
            while self.out and self.out[0] in self.back:
                self.back.discard(self.out.popleft())
            if not self.out:
                at = 0
            elif self.head > self.out[0]:  # held: [oldest, head); free: [head, size) and [0, oldest)
                at = self.head if self.head + n <= self.size else 0 if n <= self.out[0] else None
            else:  # held wraps around the end; free: [head, oldest)
                at = self.head if self.head + n <= self.out[0] else None
            if at is None or n > self.size:
                return None
            self.out.append(at)
            self.head = at + n
            return at

    def give_back(self, at):
        with self.lock:
            self.back.add(at)


def watch_parent(ring):
    """Take back what the producer gives back; exit when it closes our stdin (it ended, or was killed)."""
    pending = b""
    while chunk := os.read(0, 4096):
        *lines, pending = (pending + chunk).split(b"\n")
        if ring:
            for line in lines:
                ring.give_back(int(line))
    os._exit(1)


class Field:
    """One data source, read from an event as lclstreamer reads it."""

    def __init__(self, spec, run, source_identifier):
        self.name = spec["name"]
        self.type = spec["type"]
        self.dtype = spec.get("dtype", "float64")
        self.text = self.type == "Psana2RunInfo" or self.dtype in ("str", "U", "<U")
        self.run = run
        self.source_identifier = source_identifier
        self.fields = spec.get("psana_fields")
        if isinstance(self.fields, str):
            self.fields = [self.fields]
        self.det = None
        if self.type == "Psana2DetectorInterface":
            try:
                self.det = run.Detector(spec["psana_name"])
            except Exception as error:  # psana raises its own types here
                names = ", ".join(sorted(run.detnames))
                fail(f"data_sources.{self.name}: no detector {spec['psana_name']!r} in this run ({error}); the run has {names}")
            for field in self.fields or []:
                target = self.det
                for part in field.split("."):
                    if not hasattr(target, part):
                        fail(f"data_sources.{self.name}: {spec['psana_name']} has no {field!r} (no {part!r}); see `detnames -r FILE`")
                    target = getattr(target, part)

    def read(self, event, np):
        """The value for this event: a numpy array, a list of strings (text), or None."""
        if self.type == "Psana2Timestamp":
            return np.array(event.timestamp, dtype=np.float64)
        if self.type == "Psana2RunInfo":
            return [str(self.run.expt), str(self.run.timestamp), str(self.run.runnum), self.source_identifier]
        try:
            if self.fields is None:
                data = self.det(event)  # an EPICS PV
            else:
                results = []
                for field in self.fields:
                    target = self.det
                    for part in field.split("."):
                        target = getattr(target, part)
                    if callable(target):
                        try:
                            target = target(event)
                        except TypeError:
                            target = target()
                    results.append(target)
                data = results[0] if len(results) == 1 else results
            if self.text:
                return None if data is None else [str(x) for x in np.array(data, dtype=str).reshape(-1)]
            # As lclstreamer's numpy.array(data, dtype), without its copy when psana's array already has the dtype.
            return np.asarray(data, dtype=self.dtype)
        except (TypeError, AttributeError, ValueError):
            return None


def main():
    spec = json.loads(sys.argv[1])
    ring = Ring(3, spec["ring"]) if spec.get("ring") else None
    threading.Thread(target=watch_parent, args=(ring,), daemon=True).start()
    try:
        # A 1 MiB pipe (Linux's default limit) instead of 64 KiB: a 4 MiB frame in 4 writes, not 64.
        import fcntl

        fcntl.fcntl(1, 1031, 1 << 20)  # F_SETPIPE_SZ
    except OSError:
        pass
    os.environ.setdefault("PS_PARALLEL", "none")
    try:
        import numpy as np
        from psana import DataSource
    except ImportError as error:
        fail(f"psana is not installed for {sys.executable} ({error}): pip install psana mpich (scripts/install-system-deps.sh does)")

    kwargs = {"files": spec["files"], "skip_calib_load": "all"}
    if spec.get("max_events"):
        kwargs["max_events"] = spec["max_events"]
    try:
        ds = DataSource(**kwargs)
        run = next(ds.runs())
    except StopIteration:
        fail(f"{', '.join(spec['files'])}: no run in the files")
    except Exception as error:
        fail(f"{', '.join(spec['files'])}: {error}")

    if spec.get("describe"):
        # For the catalog: the run's detectors as psana's detnames and xtcinfo list them.
        info = [list(map(str, entry)) for entry in run.xtcinfo]
        sys.stdout.write(json.dumps({"expt": str(run.expt), "runnum": int(run.runnum), "detnames": sorted(map(str, run.detnames)), "xtcinfo": info}) + "\n")
        sys.stdout.flush()
        return

    fields = [Field(s, run, spec["source_identifier"]) for s in spec["sources"]]
    out = sys.stdout.buffer

    def send(header, buffers=()):
        text = json.dumps(header, separators=(",", ":")).encode()
        out.write(struct.pack("<I", len(text)))
        out.write(text)
        for b in buffers:
            out.write(b)

    # The fields' types and shapes, from the first events that have them (as lclstreamer takes them from the first).
    events = run.events()
    head = []
    known = {}
    for event in events:
        head.append(event)
        for f in fields:
            if f.name not in known:
                value = f.read(event, np)
                if value is not None:
                    known[f.name] = value
        if len(known) == len(fields) or len(head) >= 100:
            break
    described = []
    for f in fields:
        value = known.get(f.name)
        if f.text:
            described.append({"name": f.name, "text": True})
        elif value is None:
            fail(f"data_sources.{f.name}: no value in the first {len(head)} events, so its type and shape are unknown")
        elif str(value.dtype) not in DTYPES:
            fail(f"data_sources.{f.name}: psana gives {value.dtype}, which cannot be streamed; give dtype: float64 or another number type")
        else:
            described.append({"name": f.name, "dtype": str(value.dtype), "shape": list(value.shape)})
    send({"fields": described, "run": {"expt": str(run.expt), "runnum": int(run.runnum), "timestamp": int(run.timestamp)}})
    if spec.get("probe"):
        send({"end": True})
        out.flush()
        return

    rank, ranks, start = spec["rank"], spec["ranks"], spec.get("start", 0)

    def chain():
        yield from head
        yield from events

    for index, event in enumerate(chain()):
        if index < start or index % ranks != rank:
            continue
        sizes, buffers, text = [], [], {}
        for f in fields:
            value = f.read(event, np)
            if f.text:
                sizes.append(-1)
                if value is not None:
                    text[f.name] = value
            elif value is None:
                sizes.append(-1)
            else:
                value = np.ascontiguousarray(value)
                sizes.append(value.nbytes)
                buffers.append(memoryview(value).cast("B"))
        header = {"i": index, "t": str(event.timestamp), "n": sizes, "text": text}
        at = ring.take(sum(b.nbytes for b in buffers)) if ring and buffers else None
        if at is not None:
            header["at"] = at
            for b in buffers:
                ring.memory[at : at + b.nbytes] = b
                at += b.nbytes
            buffers = ()
        send(header, buffers)
    send({"end": True})
    out.flush()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        os._exit(1)
    # Not a normal shutdown: the stdin watcher would hold up the interpreter's.
    os._exit(0)
