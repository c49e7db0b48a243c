"""The lclstream client: ask for data, then iterate the batches as NumPy arrays or HDF5 files."""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import grpc
import numpy as np
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lclstream.buffer.v1 import buffer_pb2, buffer_pb2_grpc
from lclstream.data.v1 import data_pb2
from lclstream.request.v1 import request_pb2, request_pb2_grpc

from . import wire

_MiB = 1024 * 1024
# Batches can be large; the servers accept and send up to 64 MiB.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * _MiB),
    ("grpc.max_send_message_length", 64 * _MiB),
    # Connections of this channel's own, never shared with other channels: a process forked from this
    # one (a DataLoader worker) inherits the shared ones, and two processes on one TLS session corrupt it.
    ("grpc.use_local_subchannel_pool", 1),
]
_DTYPES = {
    data_pb2.DATA_TYPE_BOOL: np.bool_,
    data_pb2.DATA_TYPE_INT8: np.int8,
    data_pb2.DATA_TYPE_UINT8: np.uint8,
    data_pb2.DATA_TYPE_INT16: np.dtype("<i2"),
    data_pb2.DATA_TYPE_UINT16: np.dtype("<u2"),
    data_pb2.DATA_TYPE_INT32: np.dtype("<i4"),
    data_pb2.DATA_TYPE_UINT32: np.dtype("<u4"),
    data_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
    data_pb2.DATA_TYPE_UINT64: np.dtype("<u8"),
    data_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    data_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    data_pb2.DATA_TYPE_FLOAT64: np.dtype("<f8"),
}
_ENDED = (request_pb2.DataRequest.STATE_FAILED, request_pb2.DataRequest.STATE_CANCELED)


class LclstreamError(Exception):
    """A call refused or failed: the gRPC code, the ErrorInfo reason and what to do."""

    def __init__(self, code: str, message: str, reason: str | None = None):
        super().__init__(f"{code}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.reason = reason
        self.message = message

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, has_certificate: bool = True) -> "LclstreamError":
        code = error.code().name if error.code() else "UNKNOWN"
        message = error.details() or ""
        reason = None
        status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
        for detail in status.details if status else []:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason
        # A server that refuses the client's certificate ends the TLS session, and grpc says little more
        # than that (a closed socket, a reset, a failed read); a server that is down refuses the connection.
        if code == "UNAVAILABLE" and "failed to connect" in message and not re.search(r"Connection refused|DNS|resolution", message):
            if not has_certificate:
                message = f"the server needs a client certificate from its own CA and this client has none: enroll (lclstream enroll, or lclstream_client.enroll) and use Client.from_cert_dir ({message})"
            else:
                message = f"the server refused this client's certificate: it was revoked, has expired, or is from another CA; enroll again for a new one ({message})"
        return cls(code, message, reason)


@dataclass
class Batch:
    """One batch of events, as the producers made it."""

    #: The stream's sequence number (1, 2, ...): what acknowledgements and resume use.
    seq: int
    producer_rank: int
    #: The producer rank's own sequence number.
    producer_seq: int
    event_indices: np.ndarray
    #: Columnar payload: one array per field, leading dimension = events.
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    #: Serialized payload (HDF5 file bytes), when the request asked for it.
    serialized: bytes | None = None
    redelivery: bool = False
    #: The shard of a sharded request it came from (0 when the request has one stream); seq counts within it.
    shard: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes of detector data this batch carries."""
        return len(self.serialized) if self.serialized is not None else sum(a.nbytes for a in self.arrays.values())

    def columns(self) -> dict[str, np.ndarray]:
        """The batch's fields, one array per field with the events along axis 0, whichever payload it has.

        Columns are the arrays themselves (read-only views of the message). An HDF5 payload is read
        with h5py: each dataset whose first axis is the events, named by its path below `/data`
        (lclstreamer's layout) or, elsewhere, by its whole path."""
        if self.serialized is None:
            return self.arrays
        events = len(self.event_indices)
        out: dict[str, np.ndarray] = {}
        with self.h5() as f:
            import h5py

            def visit(path: str, item) -> None:
                if isinstance(item, h5py.Dataset) and item.shape[:1] == (events,):
                    out[path.removeprefix("data/")] = item[()]

            f.visititems(visit)
        return out

    def h5(self):
        """The serialized HDF5 payload opened in memory with h5py (read-only)."""
        if self.serialized is None:
            raise ValueError("this batch has columns, not HDF5: read batch.arrays, or ask for serializer SERIALIZER_HDF5")
        import h5py  # only needed for HDF5 payloads

        return h5py.File(io.BytesIO(self.serialized), "r")

    @classmethod
    def from_proto(cls, seq: int, batch: data_pb2.EventBatch, redelivery: bool = False, shard: int = 0, views: Mapping[str, memoryview] | None = None) -> "Batch":
        """The batch in `batch`; `views` holds the bytes of columns cut out of it as it was received (wire.py)."""
        out = cls(
            seq=seq,
            producer_rank=batch.producer_rank,
            producer_seq=batch.seq,
            event_indices=np.array(batch.event_indices, dtype=np.uint64),
            redelivery=redelivery,
            shard=shard,
        )
        if batch.WhichOneof("payload") == "serialized":
            out.serialized = batch.serialized.data
        elif batch.WhichOneof("payload") == "columns":
            for name, array in batch.columns.fields.items():
                data = views[name] if views and name in views else array.data
                if array.compression == data_pb2.COMPRESSION_GZIP:
                    data = gzip.decompress(data)
                elif array.compression != data_pb2.COMPRESSION_UNSPECIFIED:
                    raise LclstreamError("UNIMPLEMENTED", f"field {name} is compressed with {data_pb2.Compression.Name(array.compression)}, which this client cannot read")
                out.arrays[name] = np.frombuffer(data, dtype=_DTYPES[array.dtype]).reshape(tuple(array.shape))
        return out


class Journal:
    """What a consumer received, kept in a directory (`received.jsonl`, the format `lclstream get --out` keeps), so a restarted consumer skips it."""

    def __init__(self, directory: str | os.PathLike, request: str, group: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        owner = self.dir / "request.json"
        if owner.exists():
            was = json.loads(owner.read_text())
            if was.get("request") != request or was.get("group") != group:
                raise LclstreamError("FAILED_PRECONDITION", f"{self.dir} holds {was.get('request')} (group {was.get('group')}); use another directory for {request}")
        else:
            owner.write_text(json.dumps({"request": request, "group": group}) + "\n")
        self.path = self.dir / "received.jsonl"
        #: What was received, by (shard, seq); a line without a shard is shard 0's.
        self.received: dict[tuple[int, int], dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: that batch was never acknowledged and comes again
                self.received[(int(entry.get("shard", 0)), int(entry["seq"]))] = entry
        self._file = open(self.path, "a")
        self._lock = threading.Lock()  # shards' readers record from threads of their own

    def add(self, batch: Batch, sharded: bool = False) -> None:
        self.record(batch.seq, len(batch.event_indices), batch.nbytes, batch.shard if sharded else None)

    def record(self, seq: int, events: int, nbytes: int, shard: int | None = None) -> None:
        """Records batch `seq` (of `shard`, for a sharded request) as received and done."""
        entry: dict[str, Any] = {"seq": str(seq), "events": events, "bytes": nbytes, "hits": 0}
        if shard is not None:
            entry = {"shard": shard, **entry}
        with self._lock:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self.received[(shard or 0, seq)] = entry

    def close(self) -> None:
        self._file.close()


def default_group(request: request_pb2.DataRequest) -> str:
    """The group a consumer joins when it names none: `default` if the request has it, else its first reliable group (never a latest-only viewer's group)."""
    groups = list(request.consumer_groups)
    if not groups or any(g.name == "default" for g in groups):
        return "default"
    reliable = [g for g in groups if g.mode != buffer_pb2.DELIVERY_MODE_LATEST_ONLY]
    return (reliable or groups)[0].name


class BatchStream:
    """The batches of one data request for one consumer: iterate it; each batch is acknowledged when the next is asked for.

    With `manual_ack`, nothing is acknowledged until `ack(batch)` says the batch's work is done (for a
    consumer that holds batches past the next one, as a shuffle buffer does); `on_caught_up` is called
    when the buffer says that no more batches come (all are out), so such a consumer finishes with what
    it holds. With `shared`, other consumers share the group, so this one gets only part of the totals
    and checks only that it got no more.
    """

    def __init__(
        self,
        client: "Client",
        name: str,
        group: str | None,
        journal_dir: str | os.PathLike | None,
        ack_every: int | None,
        cancel_on_stop: bool = False,
        *,
        shared: bool = False,
        manual_ack: bool = False,
        max_in_flight: int = 0,
        max_in_flight_bytes: int = 0,
        on_caught_up: Callable[[], None] | None = None,
    ):
        self._client = client
        self._on_caught_up = on_caught_up
        self._cancel_on_stop = cancel_on_stop
        self.name = name
        #: The consumer group joined; None until iteration picks the request's own (see default_group).
        self.group = group
        self._journal_dir = journal_dir
        self._ack_every = ack_every
        self._shared = shared
        self._manual_ack = manual_ack
        self._max_in_flight = max_in_flight
        self._max_in_flight_bytes = max_in_flight_bytes
        #: The end-of-stream totals, once the stream has ended.
        self.totals: data_pb2.StreamTotals | None = None
        self.batches = 0
        self.events = 0
        #: Batches an earlier run on the same journal directory had received.
        self.resumed_batches = 0
        #: The request, when this stream created it (Client.stream).
        self.request: request_pb2.DataRequest | None = None
        self._journal: Journal | None = None
        self._ackers: dict[int, _Acker] = {}
        self._seen: set[tuple[int, int]] = set()
        self._responses: list = []
        self._cancelled = False
        self._sharded = False
        self._assigned = False
        self._shard_responses: dict[int, Any] = {}
        self._closing = False

    def __iter__(self) -> Iterator[Batch]:
        request = self._client.wait_for_stream(self.name)
        if self.group is None:
            self.group = default_group(request)
        journal = self._journal = Journal(self._journal_dir, self.name, self.group) if self._journal_dir else None
        self._seen = set(journal.received) if journal else set()
        if journal:
            self.resumed_batches = len(self._seen)
            self.batches = len(self._seen)
            self.events = sum(e["events"] for e in journal.received.values())
        shards = shards_of(request)
        self._sharded = len(shards) > 1
        self._assigned = self._sharded and any(
            g.name == self.group and g.shard_assignment == buffer_pb2.SHARD_ASSIGNMENT_ASSIGNED for g in request.consumer_groups
        )
        self._closing = False
        self._ackers = {}
        self._shard_responses: dict[int, Any] = {}
        self._counts = {s.index: [0, 0] for s in shards}  # batches and events taken from each shard
        for (shard, _), entry in journal.received.items() if journal else ():
            self._counts[shard][0] += 1
            self._counts[shard][1] += entry["events"]
        every = self._ack_every  # None: half the window each subscription is given
        if self._assigned:
            batches = self._assigned_shards(request, shards, every)
        elif self._sharded:
            batches = self._merged(request, shards, every)
        else:
            batches = self._read(request, shards[0], every, self._on_caught_up)
        try:
            for batch in batches:
                yield batch  # the consumer's work happens here, before the acknowledgement
                if not self._manual_ack:
                    self.ack(batch)
            if self._assigned:
                self.totals = sum_totals(self._shard_totals)  # the shards whose end this consumer saw
            elif self._sharded:
                self.totals = merge_totals(self._shard_totals, request.parallelism or 1)
        except BaseException as stopped:
            # Ctrl-C, a loop that stopped early, or an error in it or in the stream: a
            # request this stream created is cancelled, its jobs stopped.
            if self._cancel_on_stop and self.totals is None:
                why = "Ctrl-C or the loop ended early" if isinstance(stopped, (KeyboardInterrupt, GeneratorExit)) else f"{type(stopped).__name__}: {stopped}"[:200]
                try:
                    self._client.cancel_request(self.name, f"the consumer stopped ({why})")
                except (grpc.RpcError, LclstreamError):
                    pass  # already ended (the stream's own failure): keep the error that stopped us
            raise
        finally:
            self._closing = True
            self._close_responses()
            batches.close()
            for acker in self._ackers.values():
                acker.close()
            self._responses = []
            if journal:
                journal.close()

    def cancel(self) -> None:
        """Ends the subscription from another thread; what was not acknowledged goes to the group's other consumers."""
        self._cancelled = True
        self._close_responses()

    def _close_responses(self) -> None:
        for responses in list(self._responses):
            responses.cancel()

    def ack(self, batch: Batch) -> None:
        """Records `batch` as done (journal, counts) and acknowledges it; with `manual_ack`, the consumer calls it."""
        if self._journal:
            self._journal.add(batch, self._sharded)
        self._seen.add((batch.shard, batch.seq))
        self.batches += 1
        self.events += len(batch.event_indices)
        counts = self._counts[batch.shard]
        counts[0] += 1
        counts[1] += len(batch.event_indices)
        self._ackers[batch.shard].add(batch.seq, batch.nbytes)

    def release(self, seq: int, shard: int = 0) -> None:
        """Acknowledges `seq` (of `shard`) without recording it as done here (the process that uses it records it)."""
        self._ackers[shard].add(seq)

    def _merged(self, request, shards, every: int | None) -> Iterator[Batch]:
        """Every shard's batches as they arrive, each shard read by a thread of its own; ends when all have ended."""
        merged = _Merged(2 * len(shards))
        caught_up: set[int] = set()
        self._shard_totals: list[data_pb2.StreamTotals] = []
        done = object()
        put = merged.put

        def caught_up_on(index: int) -> Callable[[], None]:
            def note() -> None:
                caught_up.add(index)
                if len(caught_up) == len(shards) and self._on_caught_up:
                    self._on_caught_up()  # every shard has handed out everything
            return note

        def run(shard) -> None:
            try:
                for batch in self._read(request, shard, every, caught_up_on(shard.index)):
                    put(batch)
                caught_up_on(shard.index)()
                put(done)
            except BaseException as error:  # noqa: BLE001 - raised in the consumer's thread
                put(error)

        threads = [threading.Thread(target=run, args=(shard,), name=f"lclstream-shard-{shard.index}", daemon=True) for shard in shards]
        for thread in threads:
            thread.start()
        ended = 0
        try:
            while ended < len(shards):
                got = merged.queue.get()
                if got is done:
                    ended += 1
                elif isinstance(got, BaseException):
                    raise got
                else:
                    yield got
        finally:
            merged.stop.set()
            self._close_responses()
            for thread in threads:
                thread.join(timeout=10)

    def _assigned_shards(self, request, shards, every: int | None) -> Iterator[Batch]:
        """Assigned mode: the shards the request service gives this consumer (WatchShardAssignment), each
        read by a thread of its own, let go at a rebalance (what was done acknowledged first, the rest
        redelivered to its next reader), until the service says every shard is complete."""
        merged = _Merged(2 * len(shards))
        self._shard_totals = []
        done = object()
        put = merged.put
        readers: dict[int, tuple[threading.Thread, threading.Event]] = {}

        def read(shard, let_go: threading.Event) -> None:
            try:
                for batch in self._read(request, shard, every, None, let_go):
                    put(batch)
            except BaseException as error:  # noqa: BLE001 - raised in the consumer's thread
                if not let_go.is_set():
                    put(error)

        def take(index: int) -> None:
            let_go = threading.Event()
            thread = threading.Thread(target=read, args=(shards[index], let_go), name=f"lclstream-shard-{index}", daemon=True)
            readers[index] = (thread, let_go)
            thread.start()

        def release(index: int) -> None:
            thread, let_go = readers.pop(index)
            acker = self._ackers.get(index)
            if acker:
                acker.flush()
            let_go.set()
            responses = self._shard_responses.get(index)
            if responses is not None:
                responses.cancel()
            thread.join(timeout=10)

        def watch() -> None:
            try:
                calls = self._client._requests.WatchShardAssignment(
                    request_pb2.WatchShardAssignmentRequest(name=self.name, consumer_group=self.group)
                )
                self._responses.append(calls)
                for assignment in calls:
                    for index in [i for i in readers if i not in assignment.shards]:
                        release(index)
                    for index in assignment.shards:
                        if index not in readers:
                            take(index)
                    if assignment.complete:
                        for thread, _ in list(readers.values()):
                            thread.join()
                        put(done)
                        return
                put(LclstreamError("UNAVAILABLE", f"the shard assignment of {self.name} ended before the group completed; iterate again to rejoin"))
            except grpc.RpcError as error:
                if not self._closing:
                    put(LclstreamError.from_rpc(error, self._client._has_certificate))
            except BaseException as error:  # noqa: BLE001 - raised in the consumer's thread
                put(error)

        watcher = threading.Thread(target=watch, name="lclstream-assignment", daemon=True)
        watcher.start()
        try:
            while True:
                got = merged.queue.get()
                if got is done:
                    return
                if isinstance(got, BaseException):
                    raise got
                yield got
        finally:
            merged.stop.set()
            self._close_responses()
            watcher.join(timeout=10)
            for thread, _ in list(readers.values()):
                thread.join(timeout=10)

    def _read(
        self, request, shard, every: int | None, on_caught_up: Callable[[], None] | None, let_go: threading.Event | None = None
    ) -> Iterator[Batch]:
        """One shard's batches to its end of stream, its totals checked (the consumer acknowledges each batch);
        `let_go` set ends it quietly (assigned mode: the shard went to another consumer)."""
        metadata = route_metadata(shard)
        subscribe = self._client._channel(shard.buffer_endpoint).unary_stream(
            "/lclstream.buffer.v1.BufferService/Subscribe",
            request_serializer=buffer_pb2.SubscribeRequest.SerializeToString,
            response_deserializer=wire.received,
        )
        responses = subscribe(
            buffer_pb2.SubscribeRequest(
                stream=shard.stream, consumer_group=self.group, max_in_flight=self._max_in_flight, max_in_flight_bytes=self._max_in_flight_bytes
            ),
            metadata=metadata,
        )
        self._responses.append(responses)
        self._shard_responses[shard.index] = responses
        if self._cancelled:
            responses.cancel()
        acker = self._ackers[shard.index] = _Acker(self._client._buffer(shard.buffer_endpoint), shard.stream, self.group, every, metadata)
        what = f"shard {shard.index} ({shard.stream})" if self._sharded else "the stream"
        try:
            for response, views, size in responses:
                kind = response.WhichOneof("kind")
                if kind == "started":
                    acker.consumer_id = response.started.consumer_id
                    acker.use_window(response.started.max_in_flight, response.started.max_in_flight_bytes)
                elif kind == "batch":
                    if (shard.index, response.seq) in self._seen:
                        acker.add(response.seq, size)  # a batch this journal had already: only the buffer must hear of it
                        continue
                    yield Batch.from_proto(response.seq, response.batch, response.redelivery, shard.index, views)
                elif kind == "heartbeat":
                    if response.heartbeat.caught_up and on_caught_up:
                        on_caught_up()
                elif kind == "end_of_stream":
                    acker.flush()
                    totals = response.end_of_stream
                    batches, events = self._counts[shard.index]
                    # A consumer sharing its group gets a part of the totals: it can only check it got no more.
                    # Assigned mode too: a consumer before a rebalance may have read part of the shard.
                    partial = self._shared or self._assigned
                    wrong = batches > totals.batch_count if partial else (batches, events) != (totals.batch_count, totals.event_count)
                    if wrong:
                        raise LclstreamError(
                            "DATA_LOSS",
                            f"{what} ended with {totals.batch_count} batches and {totals.event_count} events, but {batches} batches and {events} events arrived",
                        )
                    if self._sharded:
                        ranks = sorted(p.producer_rank for p in totals.producer_totals)
                        if ranks != sorted(shard.producer_ranks):
                            raise LclstreamError("DATA_LOSS", f"{what} ended with the totals of ranks {ranks}, but ranks {list(shard.producer_ranks)} publish to it")
                        self._shard_totals.append(totals)
                    else:
                        self.totals = totals
                    return
            raise LclstreamError("UNAVAILABLE", f"{what} of {self.name} ended without its end-of-stream message; iterate again with the same journal_dir to resume")
        except grpc.RpcError as error:
            if self._closing or (let_go is not None and let_go.is_set()):
                return  # our own cancel, as the consumer stopped or let go of the shard
            now = self._client.get_request(self.name)
            if now.state in _ENDED:
                raise LclstreamError(request_pb2.DataRequest.State.Name(now.state), f"{self.name}: {now.state_reason}") from None
            raise LclstreamError.from_rpc(error, self._client._has_certificate) from None


def shards_of(request: request_pb2.DataRequest) -> list[request_pb2.StreamShard]:
    """A request's shards; a request from before shards (or a service that has none) has its one stream."""
    if request.shards:
        return list(request.shards)
    ranks = range(request.parallelism or 1)
    return [request_pb2.StreamShard(index=0, buffer_endpoint=request.buffer_endpoint, stream=request.stream, producer_ranks=ranks)]


def route_metadata(shard: request_pb2.StreamShard) -> tuple[tuple[str, str], ...]:
    """The metadata that takes calls about `shard` to its buffer: through the front door, its route."""
    return (("lclstream-buffer", shard.buffer_route),) if shard.buffer_route else ()


def sum_totals(shards: list[data_pb2.StreamTotals]) -> data_pb2.StreamTotals:
    """Totals added up, producer ranks in order (some shards' totals: no rank is checked)."""
    return data_pb2.StreamTotals(
        batch_count=sum(t.batch_count for t in shards),
        event_count=sum(t.event_count for t in shards),
        payload_bytes=sum(t.payload_bytes for t in shards),
        producer_totals=sorted((p for t in shards for p in t.producer_totals), key=lambda p: p.producer_rank),
    )


def merge_totals(shards: list[data_pb2.StreamTotals], parallelism: int) -> data_pb2.StreamTotals:
    """The shards' totals as one stream's; every producer rank must be counted exactly once."""
    total = sum_totals(shards)
    ranks = [p.producer_rank for p in total.producer_totals]
    if ranks != list(range(parallelism)):
        raise LclstreamError("DATA_LOSS", f"the shards' totals cover ranks {ranks}, not each of the {parallelism} ranks 0-{parallelism - 1} once")
    return total


class _Merged:
    """The shards' readers' batches (and their ends and errors) for the consumer's thread: a bounded
    queue whose `put` gives up once `stop` is set, so a reader never blocks on a consumer that left."""

    def __init__(self, size: int):
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.stop = threading.Event()

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class _Acker:
    """Acknowledges without holding up iteration: each group goes out at once as an asynchronous
    call when it holds half the consumer's window, in batches or in bytes (or `every` batches, when
    given), and what is left goes 20 ms after the first of it, from one flusher thread (the buffer
    holds the end of stream until every batch is acknowledged, and stops sending a consumer at its
    window). `flush` sends the rest and waits for every call.

    A failed Ack loses nothing: the buffer redelivers what it did not hear of.
    """

    def __init__(self, buffer: buffer_pb2_grpc.BufferServiceStub, stream: str, group: str, every: int | None, metadata: tuple = ()):
        self._buffer, self._stream, self._group, self._metadata = buffer, stream, group, metadata
        self._fixed = every
        self._every = every or 8  # half of the 16 batches a buffer from before byte windows gives by default
        self._every_bytes = math.inf
        self._pending_bytes = 0
        self.consumer_id = ""
        self._pending: list[int] = []
        self._first_at = 0.0
        self._calls: list[grpc.Future] = []
        self._cond = threading.Condition()
        self._closed = False
        self._flusher = threading.Thread(target=self._flush_late, name="lclstream-acks", daemon=True)
        self._flusher.start()

    def use_window(self, max_in_flight: int, max_in_flight_bytes: int) -> None:
        """Sends groups of half the window the subscription's started message gives (0 bytes: no byte
        limit); with `every` given, groups of that many batches, or of half the window's bytes."""
        if not max_in_flight:
            return  # a buffer from before byte windows names none
        if not self._fixed:
            self._every = max(1, max_in_flight // 2)
        self._every_bytes = max_in_flight_bytes / 2 if max_in_flight_bytes else math.inf

    def add(self, seq: int, nbytes: int = 0) -> None:
        with self._cond:
            if not self._pending:
                self._first_at = time.monotonic()  # the flusher's 20 ms count from here
                self._cond.notify()
            self._pending.append(seq)
            self._pending_bytes += nbytes
            if len(self._pending) >= self._every or self._pending_bytes >= self._every_bytes:
                self._send()

    def _send(self) -> None:
        """Sends what is pending as one asynchronous Ack (the lock held)."""
        seqs, self._pending, self._pending_bytes = self._pending, [], 0
        if seqs:
            request = buffer_pb2.AckRequest(stream=self._stream, consumer_group=self._group, consumer_id=self.consumer_id, seqs=seqs)
            self._calls = [c for c in self._calls if not c.done()] + [self._buffer.Ack.future(request, timeout=30, metadata=self._metadata)]

    def _flush_late(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._pending:
                    self._cond.wait()
                elif (left := self._first_at + 0.02 - time.monotonic()) > 0:
                    self._cond.wait(left)  # a full group sent meanwhile starts the count again
                else:
                    self._send()

    def flush(self) -> None:
        """Sends what is pending and waits until every acknowledgement sent has been answered."""
        with self._cond:
            self._send()
            calls, self._calls = self._calls, []
        for call in calls:
            try:
                call.result()
            except grpc.RpcError:
                pass  # redelivered, never lost

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify()


class Client:
    """A user's connection to lclstream: the data request service, and the buffers it sends consumers to."""

    def __init__(self, url: str, *, ca_pem: bytes, cert_pem: bytes | None = None, key_pem: bytes | None = None, timeout: float = 30):
        self.url = url
        self._ca_pem, self._cert_pem, self._key_pem = ca_pem, cert_pem, key_pem
        self._credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)
        self._has_certificate = cert_pem is not None
        self._timeout = timeout
        self._channels: dict[str, grpc.Channel] = {}
        self._requests = request_pb2_grpc.DataRequestServiceStub(self._channel(url))

    @classmethod
    def from_cert_dir(cls, url: str, cert_dir: str | os.PathLike, **kwargs: Any) -> "Client":
        """A client with the certificate in `cert_dir` (ca.crt, tls.crt, tls.key, as `lclstream enroll` writes them)."""
        d = Path(cert_dir).expanduser()
        missing = [n for n in ("ca.crt", "tls.crt", "tls.key") if not (d / n).exists()]
        if missing:
            raise LclstreamError("UNAUTHENTICATED", f"{d} lacks {', '.join(missing)}: enroll first (lclstream enroll, or lclstream_client.enroll) to get a certificate")
        return cls(url, ca_pem=(d / "ca.crt").read_bytes(), cert_pem=(d / "tls.crt").read_bytes(), key_pem=(d / "tls.key").read_bytes(), **kwargs)

    def _channel(self, url: str) -> grpc.Channel:
        target = url.removeprefix("https://").rstrip("/")
        if target not in self._channels:
            self._channels[target] = grpc.secure_channel(target, self._credentials, options=_CHANNEL_OPTIONS)
        return self._channels[target]

    def _buffer(self, endpoint: str) -> buffer_pb2_grpc.BufferServiceStub:
        return buffer_pb2_grpc.BufferServiceStub(self._channel(endpoint))

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise LclstreamError.from_rpc(error, self._has_certificate) from None

    def create_request(self, config: Mapping[str, Any] | str | os.PathLike) -> request_pb2.DataRequest:
        """Creates a data request from a dict, or a YAML/JSON file as `lclstream get` reads it."""
        if not isinstance(config, Mapping):
            import yaml

            config = yaml.safe_load(Path(config).read_text())
        body = dict(config)
        if "producer" not in body and "source_identifier" in body:
            body = {"producer": body}  # a bare producer config
        try:
            request = json_format.ParseDict(body, request_pb2.DataRequest())
        except json_format.ParseError as error:
            raise LclstreamError("INVALID_ARGUMENT", f"the config is not a data request: {error}") from None
        return self._call(self._requests.CreateDataRequest, request_pb2.CreateDataRequestRequest(data_request=request)).data_request

    def get_request(self, name: str) -> request_pb2.DataRequest:
        return self._call(self._requests.GetDataRequest, request_pb2.GetDataRequestRequest(name=_name(name))).data_request

    def cancel_request(self, name: str, reason: str = "cancelled from Python") -> request_pb2.DataRequest:
        return self._call(self._requests.CancelDataRequest, request_pb2.CancelDataRequestRequest(name=_name(name), reason=reason)).data_request

    def wait_for_stream(self, name: str, timeout: float = 120) -> request_pb2.DataRequest:
        """Waits until the request has its stream (its producers were submitted)."""
        deadline = time.monotonic() + timeout
        while True:
            request = self.get_request(name)
            if request.stream:
                return request
            if request.state in _ENDED:
                raise LclstreamError(request_pb2.DataRequest.State.Name(request.state), f"{request.name}: {request.state_reason}")
            if time.monotonic() > deadline:
                raise LclstreamError("DEADLINE_EXCEEDED", f"{request.name} has no stream after {timeout} s (state {request_pb2.DataRequest.State.Name(request.state)})")
            time.sleep(0.1)

    def batches(
        self,
        name: str,
        group: str | None = None,
        journal_dir: str | os.PathLike | None = None,
        ack_every: int | None = None,
        *,
        shared: bool = False,
        manual_ack: bool = False,
        max_in_flight: int = 0,
        max_in_flight_bytes: int = 0,
    ) -> BatchStream:
        """The batches of request `name` for one consumer of `group` (default: the request's own, see default_group). With `journal_dir`, a consumer killed and started again gets only what it lacks.

        `shared`: other consumers read the same group (DataLoader workers, DDP ranks), so this one gets a part
        of the stream. `manual_ack`: see BatchStream. `max_in_flight` and `max_in_flight_bytes`: unacknowledged
        batches, and bytes of them, this consumer may hold (0: the group's own limits; by default 32 MiB of
        batches, at most 1024). `ack_every`: batches acknowledged in one call (default: half the window, in
        batches or bytes; what is left goes 20 ms after it was taken)."""
        return BatchStream(
            self,
            _name(name),
            group,
            journal_dir,
            ack_every,
            shared=shared,
            manual_ack=manual_ack,
            max_in_flight=max_in_flight,
            max_in_flight_bytes=max_in_flight_bytes,
        )

    def stream(self, config: Mapping[str, Any] | str | os.PathLike, group: str | None = None, journal_dir: str | os.PathLike | None = None, keep: bool = False) -> BatchStream:
        """Creates a request and returns its batches (`.request` is the request). Ctrl-C, an exception in the loop, or leaving it before the end cancels the request, unless `keep`."""
        request = self.create_request(config)
        stream = BatchStream(self, request.name, group, journal_dir, None, cancel_on_stop=not keep)
        stream.request = request
        return stream

    def _settings(self) -> tuple[str, dict[str, Any]]:
        """What makes a client like this one in another process (a DataLoader worker: a gRPC channel must not cross a fork)."""
        return self.url, {"ca_pem": self._ca_pem, "cert_pem": self._cert_pem, "key_pem": self._key_pem, "timeout": self._timeout}

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _name(name: str) -> str:
    return name if name.startswith("dataRequests/") else f"dataRequests/{name}"
