"""PyTorch datasets over lclstream data requests (importing this module imports torch).

    from lclstream_client import Client
    from lclstream_client.torch import StreamDataset, StreamLoader

    client = Client.from_cert_dir("https://facility:8443", "~/.lclstream/certs/user")
    with StreamDataset.from_config(client, "training.yaml", fields=["frame"]) as events:
        for batch in StreamLoader(events, batch_size=32, num_workers=2):
            ...

Every DataLoader worker, and every DDP rank on any node, opens its own channel and joins the same
consumer group as a consumer of its own, so the buffer deals the batches out between them: each event
goes to exactly one of them, and what a consumer that dies had not acknowledged goes to another.
StreamLoader acknowledges in the loop's own process, once the loop has taken the next batch, so
nothing a worker had prefetched is lost when a worker or the loop dies. Its workers hand their large
tensors to the loop through shared memory of their own (see StreamLoader), not one segment each.
"""
from __future__ import annotations

import os
import collections
import itertools
import queue
import random
import threading
import time
import warnings
import weakref
from functools import partial
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import grpc
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lclstream.buffer.v1 import buffer_pb2
from lclstream.request.v1 import request_pb2

from .client import Batch, BatchStream, Client, Journal, LclstreamError, _Acker, default_group, merge_totals, route_metadata, shards_of

_PRODUCERS_DONE = (request_pb2.DataRequest.STATE_DRAINING, request_pb2.DataRequest.STATE_SUCCEEDED)
_LIVE = (request_pb2.DataRequest.STATE_PENDING, request_pb2.DataRequest.STATE_RUNNING, request_pb2.DataRequest.STATE_DRAINING)
_CAUGHT_UP = object()  # the buffer has nothing more to hand out: finish with what is held
_END = object()
_no_byte_limit = 1 << 40  # the most a buffer accepts as a byte window: no limit in practice
# In a StreamLoader's worker: the batch of each item yielded, in order, for the loader's collate in
# the same process to send along with the items it stacks.
_tags: collections.deque = collections.deque()


class StreamDataset(IterableDataset):
    """The events (or, with `per_event=False`, the batches) of a data request as dicts of tensors.

    - `fields`: the fields to yield (default: all); each item also has `event_index`.
    - `copy`: give writable tensors, by one copy of each batch. Without it, tensors are read-only views
      of the received message (no copy, and no warning from torch): do not write to them in place.
      HDF5 payloads, read with h5py, are writable either way.
    - `shuffle_buffer`: events held and handed out in random order (a reservoir of that size, drawn
      with `seed` and the worker's id). The seed fixes the draws, not the order in which events arrive.
    - `journal_dir`: where what was received is recorded, so that a consumer started again skips it.
      Every worker of a dataset may share one directory.
    - `group`: the consumer group (default: the request's own, see `default_group`).

    An item is acknowledged when the next one is taken. With StreamLoader that is the loop taking the
    next batch. With a plain DataLoader and workers, a worker acknowledges an item when it hands it to
    the loader, so the items the loader had prefetched are lost if the loop's process dies.
    """

    def __init__(
        self,
        client: Client,
        request: str,
        *,
        fields: list[str] | None = None,
        group: str | None = None,
        per_event: bool = True,
        copy: bool = False,
        shuffle_buffer: int = 0,
        seed: int = 0,
        journal_dir: str | os.PathLike | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        ack_every: int | None = None,
    ):
        super().__init__()
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer is {shuffle_buffer}: give a number of events, or 0 for none")
        self.name = request if request.startswith("dataRequests/") else f"dataRequests/{request}"
        self.fields, self.group, self.per_event, self.copy = fields, group, per_event, copy
        self.shuffle_buffer, self.seed, self.transform, self.ack_every = shuffle_buffer, seed, transform, ack_every
        self.journal_dir = str(journal_dir) if journal_dir is not None else None
        #: The end-of-stream totals, once this process's consumer has seen the end.
        self.totals = None
        #: The request, when the dataset created it (from_config).
        self.request: request_pb2.DataRequest | None = None
        self._settings = client._settings()
        self._client: Client | None = client
        self._pid = os.getpid()
        self._keep = True  # a request the dataset did not create is never cancelled by it
        # Set by StreamLoader: its workers leave acknowledging to the loop, which takes batches of
        # _loader_batch items and holds that many more unacknowledged.
        self._acks_in_loop = False
        self._loader_batch = 1
        self._loader_holds = 0

    @classmethod
    def from_config(cls, client: Client, config: Mapping[str, Any] | str | os.PathLike, *, keep: bool = False, **options: Any) -> "StreamDataset":
        """Creates a data request and a dataset over it. Used as a context manager, an exception in the
        `with` block, or leaving it before the stream has ended, cancels the request, unless `keep`."""
        request = client.create_request(config)
        dataset = cls(client, request.name, **options)
        dataset.request = request
        dataset._keep = keep
        return dataset

    # -- one client per process: a gRPC channel must not cross a fork, and cannot be pickled for spawn

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def _client_here(self) -> Client:
        if self._client is None or self._pid != os.getpid():
            url, options = self._settings
            self._client, self._pid = Client(url, **options), os.getpid()
        return self._client

    # -- the stream

    def __iter__(self) -> Iterator[Any]:
        client = self._client_here()
        worker = get_worker_info()
        acks_here = worker is None or not self._acks_in_loop
        rng = random.Random(f"{self.seed}/{worker.id if worker else 0}")
        # A window of 32 batches for a loader's queues and the loop's grouped acks, and room for what
        # the reservoir and the loader hold unacknowledged. Counted in batches only: the reservoir holds
        # its batches whatever their size, and a byte limit below that would stall it.
        held = self.shuffle_buffer + (0 if acks_here else self._loader_holds)
        stream = client.batches(
            self.name,
            self.group,
            self.journal_dir,
            self.ack_every,
            shared=True,
            manual_ack=True,
            max_in_flight=min(10_000, 32 + held),
            max_in_flight_bytes=_no_byte_limit,
        )
        reader = _Reader(stream)
        items = self._items(reader)
        if self.shuffle_buffer:
            items = _shuffled(items, self.shuffle_buffer, rng)
        loader_batch = max(1, self._loader_batch)
        recent: collections.deque = collections.deque(maxlen=loader_batch)  # the holds of the items last handed out
        handed = 0
        try:
            for entry in items:
                if entry is _CAUGHT_UP:
                    if not acks_here and handed % loader_batch:
                        # The loader waits for more items to fill its batch, and none come: the stream ends
                        # only when everything is acknowledged, so the items of that partial batch are
                        # acknowledged here, at handing out, rather than in the loop.
                        for shard, seq in {(hold.batch.shard, hold.batch.seq) for hold in list(recent)[-(handed % loader_batch) :]}:
                            stream.release(seq, shard)
                    continue
                item, hold = entry
                if not acks_here:
                    _tags.append(hold.tag)
                    recent.append(hold)
                    handed += 1
                yield item if self.transform is None else self.transform(item)
                if acks_here:
                    hold.take(stream)  # the next item is being asked for: this one is done
        finally:
            reader.close()
            self.totals = stream.totals

    def _items(self, reader: "_Reader") -> Iterator[Any]:
        """(item, its batch's hold) pairs, and _CAUGHT_UP when the buffer has handed out everything."""
        while True:
            got = reader.get()
            if got is _END:
                return
            if got is _CAUGHT_UP:
                yield got
                continue
            batch, columns = got
            tensors = {name: _tensor(columns[name], self.copy) for name in (self.fields or columns)}
            if self.per_event:
                held = _Held(batch, len(batch.event_indices))
                for i, index in enumerate(batch.event_indices.tolist()):
                    yield {**{name: t[i] for name, t in tensors.items()}, "event_index": index}, held
            else:
                tensors["event_index"] = torch.from_numpy(batch.event_indices.astype(np.int64))
                yield tensors, _Held(batch, 1)

    def __len__(self) -> int:
        """Events (batches with `per_event=False`) in the whole stream, once the producers have finished
        (or this process has seen the stream's end); until then the length is unknown (TypeError, as
        for any iterable without one)."""
        if self.totals is not None:  # the end of stream's own count: the request may not have moved on yet
            return int(self.totals.event_count if self.per_event else self.totals.batch_count)
        request = self._client_here().get_request(self.name)
        if request.state not in _PRODUCERS_DONE:
            raise TypeError(f"the length of {self.name} is known once its producers have finished (it is {request_pb2.DataRequest.State.Name(request.state)})")
        return int(request.metrics.events if self.per_event else request.metrics.batches)

    # -- a request the dataset created

    def __enter__(self) -> "StreamDataset":
        return self

    def __exit__(self, kind, error, _traceback) -> None:
        if self._keep:
            return
        client = self._client_here()
        request = client.get_request(self.name)
        # Read to its end, the stream still waits a moment for the last acknowledgements.
        for _ in range(50):
            if kind or request.state != request_pb2.DataRequest.STATE_DRAINING:
                break
            time.sleep(0.1)
            request = client.get_request(self.name)
        if request.state in _LIVE:
            why = f"{kind.__name__}: {error}"[:200] if kind else "the dataset was left before its stream ended"
            try:
                client.cancel_request(self.name, f"the consumer stopped ({why})")
            except LclstreamError:
                pass  # it ended meanwhile


def collate(items: list[Any]) -> Any:
    """Stacks items as a DataLoader batch: dicts key by key, tensors and arrays along a new first axis, numbers into a tensor."""
    first = items[0]
    if isinstance(first, Mapping):
        return {key: collate([item[key] for item in items]) for key in first}
    if isinstance(first, torch.Tensor):
        return torch.stack(items)
    if isinstance(first, np.ndarray):
        return torch.from_numpy(np.stack(items))
    if isinstance(first, (bool, int, float, np.number)):
        return torch.tensor(items)
    return list(items)


class StreamLoader(DataLoader):
    """A DataLoader over a StreamDataset that acknowledges in the loop's process: a batch of the
    stream is acknowledged once the loop has taken the loader batch after the last of its items.

    It takes DataLoader's arguments; `collate_fn` defaults to `collate`, and `in_order` to False (the
    loop takes whichever worker's batch is ready: waiting for a worker whose next batch needs what the
    others hold unacknowledged could wait for ever). `drop_last` is refused: the items it drops would
    never be acknowledged, and the stream could not end.

    Each worker hands its tensors of over 64 KiB to the loop through a ring of shared memory of its own,
    `shared_ring_bytes` (64 MiB) in /dev/shm, written once and mapped by the loop; a region is written
    again only once every tensor over it is gone. torch's own DataLoader makes a shared-memory segment
    for every tensor: handing 1 MiB tensors from 2 workers, no network, cost 3.9-5.1 ms of CPU a MiB
    that way and 1.4-1.6 through the rings. What does not fit, a loop that keeps a whole ring, a
    /dev/shm with less than four rings free, or `pin_memory`, goes torch's own way;
    `shared_ring_bytes=0` always does.
    """

    def __init__(
        self,
        dataset: StreamDataset,
        batch_size: int | None = 1,
        *,
        collate_fn: Callable | None = None,
        drop_last: bool = False,
        shared_ring_bytes: int = 64 << 20,
        **options: Any,
    ):
        if drop_last:
            raise ValueError("drop_last would leave the dropped items unacknowledged, and the stream could never end: drop them in the loop instead")
        if shared_ring_bytes < 0:
            raise ValueError(f"shared_ring_bytes is {shared_ring_bytes}: give a size in bytes, or 0 for torch's own sharing")
        dataset._acks_in_loop = True
        dataset._loader_batch = batch_size or 1
        dataset._loader_holds = (batch_size or 1) * ((options.get("prefetch_factor") or 2) + 1)
        options.setdefault("in_order", False)
        # Pinning happens in a thread of the loader's own, before the loop could map a ring's tensors.
        ring_bytes = 0 if options.get("pin_memory") else shared_ring_bytes
        super().__init__(dataset, batch_size, collate_fn=partial(_tagged, collate_fn or (collate if batch_size else _as_is), batch_size is None, ring_bytes), **options)
        self._rings = _LoopRings()

    def __iter__(self) -> Iterator[Any]:
        if not self.persistent_workers:
            self._rings = _LoopRings()  # new workers, new rings; the old stay mapped while their tensors live
        batches = super().__iter__()
        # Only after the workers have started: a process must not fork while it has a call of gRPC's under way.
        acks = _LoopAcks(self.dataset) if self.num_workers > 0 else None
        try:
            for batch, tags in batches:
                yield _unpacked(batch, self._rings)
                if acks:
                    acks.done(tags)
            if acks:
                self.dataset.totals = acks.end()  # the workers had it: the loop's process learns it too
        finally:
            if acks:
                acks.close()


def _as_is(item: Any) -> Any:
    return item


def _tagged(collate_fn: Callable, single: bool, ring_bytes: int, items: Any) -> tuple[Any, list[tuple[int, int, int, int]]]:
    """In a worker: the loader batch, with the stream batches its items came from (see _tags)."""
    count = 1 if single else len(items)
    tags = [_tags.popleft() for _ in range(count)] if _tags else []
    return _packed(collate_fn(items), _worker_ring(ring_bytes)), tags


class _Inline:
    """A small tensor's values, sent from a worker inside the pickle rather than as a shared-memory
    segment of its own (torch shares every tensor: for an event_index beside a 1 MiB frame, a second
    segment cost a third of the loader's throughput)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __getstate__(self):
        return self.array

    def __setstate__(self, array):
        self.array = array


_INLINE_BYTES = 64 << 10


def _packed(value: Any, ring: "_Ring | None" = None) -> Any:
    """In a worker: small tensors inline, large ones in the worker's ring when they fit, the rest as torch shares them."""
    if isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.dtype != torch.bfloat16:
        if value.nbytes <= _INLINE_BYTES:
            return _Inline(value.numpy(force=True))
        placed = ring.put(value.numpy(force=True)) if ring else None
        return placed or value
    if isinstance(value, dict):
        return {key: _packed(v, ring) for key, v in value.items()}
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(_packed(v, ring) for v in value)
    return value


def _unpacked(value: Any, rings: "_LoopRings | None" = None) -> Any:
    """In the loop: _packed's small tensors as tensors again, and its ringed ones as tensors over the ring."""
    if isinstance(value, _Inline):
        return torch.from_numpy(value.array)
    if isinstance(value, _Ringed):
        return rings.tensor(value)
    if isinstance(value, dict):
        return {key: _unpacked(v, rings) for key, v in value.items()}
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(_unpacked(v, rings) for v in value)
    return value


_RING_IDS = 4096  # regions a ring may have out at once: one released flag each, at the ring's start
_RING_ALIGN = 64
_ring_serials = itertools.count()


class _Ringed(NamedTuple):
    """A tensor's place in a worker's ring, as sent to the loop; the first from a ring carries the ring itself."""

    key: tuple[int, int]
    region: int
    offset: int
    dtype: str
    shape: tuple[int, ...]
    ring: torch.Tensor | None


class _Ring:
    """A worker's shared memory for handing tensors to the loop: regions written in turn, each written
    again only once the loop released it (the flag of its id, set when the last tensor over it is gone).
    Regions are taken back in the order they were given, so one the loop keeps holds up the rest; what
    does not fit then goes torch's own way."""

    def __init__(self, nbytes: int):
        # torch's shared memory (an fd, sent to the loop with the first region): nothing named to leak.
        self.tensor = torch.zeros(_RING_IDS + nbytes, dtype=torch.uint8).share_memory_()
        memory = self.tensor.numpy()
        self.released, self.data, self.size = memory[:_RING_IDS], memory[_RING_IDS:], nbytes
        self.key = (os.getpid(), next(_ring_serials))
        self.out: collections.deque = collections.deque()  # (id, start) of the regions out, oldest first
        self.head = 0  # where the next region starts, when it fits there
        self.next_id = 0
        self.sent = False

    def put(self, array: np.ndarray) -> _Ringed | None:
        """The array copied into a free region, or None when none is large enough."""
        while self.out and self.released[self.out[0][0] % _RING_IDS]:
            self.released[self.out.popleft()[0] % _RING_IDS] = 0
        size = -(-array.nbytes // _RING_ALIGN) * _RING_ALIGN
        start = self._place(size)
        if start is None or len(self.out) >= _RING_IDS:
            return None
        region = self.next_id
        self.next_id += 1
        self.out.append((region, start))
        self.head = start + size
        np.copyto(self.data[start : start + array.nbytes].view(array.dtype).reshape(array.shape), array)
        ring, self.sent = (None if self.sent else self.tensor), True
        return _Ringed(self.key, region, _RING_IDS + start, array.dtype.str, array.shape, ring)

    def _place(self, size: int) -> int | None:
        if not self.out:
            return 0 if size <= self.size else None
        tail = self.out[0][1]
        if self.head > tail:  # free: from head to the end, and from the start to tail
            if self.size - self.head >= size:
                return self.head
            return 0 if tail >= size else None
        return self.head if self.head < tail and tail - self.head >= size else None


_ring_here: _Ring | None = None


def _worker_ring(nbytes: int) -> _Ring | None:
    """This worker's ring, made at its first use; None outside a worker, when turned off, or when
    /dev/shm has less than four rings free (a full /dev/shm is a bus error, not an exception)."""
    global _ring_here
    if nbytes <= 0 or get_worker_info() is None:
        return None
    if _ring_here is None or _ring_here.size != nbytes:
        try:
            shm = os.statvfs("/dev/shm")
            if shm.f_bavail * shm.f_frsize < 4 * nbytes:
                return None
        except OSError:
            pass  # no /dev/shm to ask (not Linux): torch's shared memory lives elsewhere
        _ring_here = _Ring(nbytes)
    return _ring_here


def _release(released: np.ndarray, index: int) -> None:
    released[index] = 1


class _LoopRings:
    """In the loop: the rings of the loader's workers, and tensors over their regions."""

    def __init__(self):
        self._rings: dict[tuple[int, int], np.ndarray] = {}

    def tensor(self, placed: _Ringed) -> torch.Tensor:
        if placed.ring is not None:
            self._rings[placed.key] = placed.ring.numpy()
        memory = self._rings[placed.key]
        dtype = np.dtype(placed.dtype)
        count = int(np.prod(placed.shape))
        array = np.frombuffer(memory, dtype, count, placed.offset).reshape(placed.shape)
        # The region goes back when the array does: torch.from_numpy holds it for as long as any tensor
        # over it (a view, a slice) lives.
        weakref.finalize(array, _release, memory, placed.region % _RING_IDS)
        return torch.from_numpy(array)


class _LoopAcks:
    """Acknowledges, from the loop's process, the stream batches whose items the loop has all taken."""

    def __init__(self, dataset: StreamDataset):
        client = dataset._client_here()
        request = client.wait_for_stream(dataset.name)
        group = dataset.group or default_group(request)
        self._group, self._parallelism = group, request.parallelism or 1
        self._shards = shards_of(request)
        self._sharded = len(self._shards) > 1
        self._buffers = {s.index: client._buffer(s.buffer_endpoint) for s in self._shards}
        # One per shard (see done for when they send).
        self._ackers = {s.index: _Acker(self._buffers[s.index], s.stream, group, dataset.ack_every or 8, route_metadata(s)) for s in self._shards}
        self._done_at = 0.0
        self._journal = Journal(dataset.journal_dir, dataset.name, group) if dataset.journal_dir else None
        self._left: dict[tuple[int, int], int] = {}

    def done(self, tags: list[tuple[int, int, int, int, int]]) -> None:
        for shard, seq, items, events, nbytes in tags:
            left = self._left.pop((shard, seq), items) - 1
            if left:
                self._left[(shard, seq)] = left
                continue
            if self._journal:
                self._journal.record(seq, events, nbytes, shard if self._sharded else None)
            self._ackers[shard].add(seq)
        # A loop slower than one loader batch per 20 ms waits for the buffer's answer (under a millisecond
        # on a warm channel, so under 5% of its time): a worker that dies then leaves only the loader batch
        # the loop was in to be delivered again. A faster loop sends in groups (8 seqs, or 20 ms after the
        # first), as the plain client does: a crash then gives back at most those 20 ms of batches. Sending
        # from every 5 ms instead, a group of one or two 1 MiB batches an Ack call, cost the buffer a fifth
        # more CPU a MiB and the loader 8% of its rate (1.7 against 2.0 ms/MiB, 412 against 381 MB/s).
        now = time.monotonic()
        slow, self._done_at = now - self._done_at >= 0.02, now
        if slow:
            for acker in self._ackers.values():
                acker.flush()

    def end(self, wait: float = 30):
        """The end of the stream (every shard's), with its totals, once the buffer has every
        acknowledgement; None if batches come instead (another consumer left some unacknowledged:
        they are for the next epoch)."""
        ended = []
        for shard in self._shards:
            self._ackers[shard.index].flush()
            responses = self._buffers[shard.index].Subscribe(
                buffer_pb2.SubscribeRequest(stream=shard.stream, consumer_group=self._group), timeout=wait, metadata=route_metadata(shard)
            )
            try:
                for response in responses:
                    kind = response.WhichOneof("kind")
                    if kind == "end_of_stream":
                        ended.append(response.end_of_stream)
                        break
                    if kind == "batch":
                        return None
                else:
                    return None
            except grpc.RpcError as error:
                raise LclstreamError.from_rpc(error) from None
            finally:
                responses.cancel()
        return merge_totals(ended, self._parallelism) if self._sharded else ended[0]

    def close(self) -> None:
        for acker in self._ackers.values():
            acker.close()
        if self._journal:
            self._journal.close()


class _Held:
    """A batch whose items are out: acknowledged when the last of them is done."""

    __slots__ = ("batch", "left", "tag")

    def __init__(self, batch: Batch, items: int):
        self.batch, self.left = batch, items
        self.tag = (batch.shard, batch.seq, items, len(batch.event_indices), batch.nbytes)

    def take(self, stream: BatchStream) -> None:
        self.left -= 1
        if self.left == 0:
            stream.ack(self.batch)


class _Reader:
    """Receives and decodes batches in a thread of its own, a few ahead, while the loop works."""

    def __init__(self, stream: BatchStream, ahead: int = 2):
        self._stream = stream
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._closed = threading.Event()
        stream._on_caught_up = lambda: self._put(_CAUGHT_UP)
        self._thread = threading.Thread(target=self._run, name="lclstream-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._stream:
                if not self._put((batch, batch.columns())):
                    return
            self._put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(error)

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        """The next (batch, columns), _CAUGHT_UP or _END; raises what the stream raised."""
        got = self._queue.get()
        if isinstance(got, BaseException):
            raise got
        return got

    def close(self) -> None:
        self._closed.set()
        self._stream.cancel()
        self._thread.join(timeout=10)


def _shuffled(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """A reservoir of `size` items handed out at random. It empties when the buffer has handed out
    everything, since the buffer holds the end of the stream until the items held here are acknowledged."""
    pool: list[Any] = []

    def draw() -> Any:
        i = rng.randrange(len(pool))
        pool[i], pool[-1] = pool[-1], pool[i]
        return pool.pop()

    for item in items:
        if item is _CAUGHT_UP:
            while pool:
                yield draw()
            yield item
            continue
        pool.append(item)
        if len(pool) >= size:
            yield draw()
    while pool:
        yield draw()


def _tensor(array: np.ndarray, copy: bool) -> torch.Tensor:
    if copy and not array.flags.writeable:
        array = array.copy()
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        # torch warns of every read-only array; these stay read-only by contract (see StreamDataset).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)
