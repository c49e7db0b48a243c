"""lclstream_client.torch against the real mesh: DataLoader workers and ranks sharing a stream, kills, tensors, HDF5, resume."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")  # run by test/system/torch.test.ts in an environment with torch

from functools import partial  # noqa: E402

from torch.utils.data import DataLoader, IterableDataset, get_worker_info  # noqa: E402

from conftest import tof_request  # noqa: E402
from lclstream.request.v1 import request_pb2  # noqa: E402
from lclstream_client.torch import StreamDataset, StreamLoader, collate  # noqa: E402
from lclstream_client.torch import _as_is, _LoopRings, _Ringed, _tagged, _unpacked  # noqa: E402

SUCCEEDED = request_pb2.DataRequest.STATE_SUCCEEDED
CANCELED = request_pb2.DataRequest.STATE_CANCELED


def with_worker(item):
    """Marks an item with the DataLoader worker that made it."""
    item["worker"] = get_worker_info().id
    return item


class Frames(IterableDataset):
    """1 MiB frames, each filled with its worker and number, for the shared-memory ring (no network)."""

    def __init__(self, count: int):
        self.count = count

    def __iter__(self):
        worker = get_worker_info().id
        for i in range(self.count):
            yield {"frame": torch.full((512, 512), worker * 1000 + i, dtype=torch.int32), "number": (worker, i)}


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_hand_large_tensors_through_their_rings_and_never_overwrite_one_held(start):
    # The loader's own packing and unpacking, over a plain DataLoader: rings of 8 MiB, 1 MiB frames.
    def loader(count):
        return DataLoader(Frames(count), batch_size=None, num_workers=2, multiprocessing_context=start, collate_fn=partial(_tagged, _as_is, True, 8 << 20))

    def check(item):
        worker, i = item["number"]
        assert item["frame"].shape == (512, 512) and bool((item["frame"] == worker * 1000 + i).all()), f"frame {i} of worker {worker}"

    rings = _LoopRings()
    ringed = 0
    for sent, _tags in loader(40):  # each frame dropped before the next is taken: the ring goes round
        ringed += isinstance(sent["frame"], _Ringed)
        item = _unpacked(sent, rings)
        check(item)
        item["frame"].add_(1)  # writable, and the worker writes the region again only once it is gone
        del item
    assert ringed == 80, "every frame through a ring, each used again and again"

    rings, held, ringed = _LoopRings(), [], 0
    for sent, _tags in loader(30):  # every frame held: the rings fill, and the rest go torch's own way
        ringed += isinstance(sent["frame"], _Ringed)
        held.append(_unpacked(sent, rings))
    for item in held:
        check(item)
    assert ringed == 2 * 8, f"{ringed} frames through the rings: as many as 8 MiB holds, then none"


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_two_workers_share_the_stream_every_event_once(client, start):
    with StreamDataset.from_config(client, tof_request(events=400, batch_size=8), fields=["tof"], transform=with_worker) as events:
        indices, workers = [], []
        for batch in StreamLoader(events, batch_size=16, num_workers=2, multiprocessing_context=start):
            assert batch["tof"].shape[1:] == (2, 256) and batch["tof"].dtype == torch.int16
            indices += batch["event_index"].tolist()
            workers += batch["worker"].tolist()
        assert sorted(indices) == list(range(400)), "every event exactly once across the workers"
        if start == "fork":  # spawned workers start seconds apart, and the first may take all of a short stream
            assert set(workers) == {0, 1}
        assert len(events) == 400
    assert client.get_request(events.name).state == SUCCEEDED


def test_two_workers_read_a_sharded_request_every_event_once(client):
    config = tof_request(events=240, batch_size=8, parallelism=3, shard_count=3)
    with StreamDataset.from_config(client, config, fields=["tof"]) as events:
        indices = [i for batch in StreamLoader(events, batch_size=16, num_workers=2) for i in batch["event_index"].tolist()]
        assert sorted(indices) == list(range(240)), "every event exactly once across the workers and the shards"
        assert len(events) == 240
        assert [p.producer_rank for p in events.totals.producer_totals] == [0, 1, 2]
    assert client.get_request(events.name).state == SUCCEEDED


def test_large_tensors_from_two_workers_are_the_events_the_stream_holds(client):
    # 256 KiB events in loader batches of 1 MiB: they reach the loop through the workers' rings.
    config = tof_request(events=96, batch_size=8)
    config["producer"]["data_sources"]["tof"]["samples"] = 65536

    def digests(items):
        return {i: hashlib.sha256(tof.numpy().tobytes()).hexdigest() for batch in items for i, tof in zip(batch["event_index"].tolist(), batch["tof"])}

    with StreamDataset.from_config(client, config, fields=["tof"]) as events:
        direct = digests(StreamLoader(events, batch_size=4))  # no workers: no rings
    with StreamDataset.from_config(client, config, fields=["tof"]) as events:
        # All held, in rings of 4 MiB: four batches of each worker in its ring, the rest torch's own way.
        batches = list(StreamLoader(events, batch_size=4, num_workers=2, shared_ring_bytes=4 << 20))
    assert sorted(direct) == list(range(96)) and digests(batches) == direct, "the same events, byte for byte"
    batches[0]["tof"].add_(1)  # writable


def test_a_plain_dataloader_shares_the_stream_too(client):
    with StreamDataset.from_config(client, tof_request(events=200, batch_size=8), fields=["tof"]) as events:
        indices = [i for batch in DataLoader(events, batch_size=10, num_workers=2, collate_fn=collate) for i in batch["event_index"].tolist()]
    assert sorted(indices) == list(range(200))


RANK = """
import os, sys, time
from lclstream_client import Client
from lclstream_client.torch import StreamDataset, StreamLoader
url, cert_dir, name, pause = sys.argv[1:5]

def report(worker):
    print("worker", os.getpid(), flush=True)

events = StreamDataset(Client.from_cert_dir(url, cert_dir), name, fields=["tof"])
for batch in StreamLoader(events, batch_size=8, num_workers=1, worker_init_fn=report):
    print("events", *batch["event_index"].tolist(), flush=True)
    time.sleep(float(pause))
print("done", flush=True)
"""


def test_a_rank_whose_worker_is_killed_leaves_what_it_had_not_used_to_the_other(client, endpoints, tmp_path):
    # A live stream (60 events/s), so that both ranks are still reading when one loses its worker: 8 s
    # of it, since each rank first imports torch and starts its worker (4 s ran out on a busy machine
    # before the slow rank had read its 16).
    events = 480
    config = tof_request(events=events, batch_size=4)
    config["producer"]["event_source"].update(rate_hz=60, paced=True)
    request = client.create_request(config)
    script = tmp_path / "rank.py"
    script.write_text(RANK)

    def rank(pause: str) -> subprocess.Popen:
        args = [sys.executable, str(script), endpoints["request"], endpoints["certDir"], request.name, pause]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})

    slow, steady = rank("0.3"), rank("0")
    worker, used_by_slow = None, []
    while len(used_by_slow) < 16:
        line = slow.stdout.readline().split()
        assert line and line[0] != "done", f"the slow rank reads 16 events before the stream ends: {line} {slow.stderr.read()}"
        if line[0] == "worker":
            worker = int(line[1])
        elif line[0] == "events":
            used_by_slow += [int(i) for i in line[1:]]
    os.kill(worker, signal.SIGKILL)  # mid-epoch: its worker holds batches the loop has not taken
    rest, _ = slow.communicate(timeout=60)
    assert slow.returncode != 0, "the loop of a rank whose worker died fails"
    assert not [line for line in rest.splitlines() if line.startswith("events")]
    out, err = steady.communicate(timeout=120)
    assert steady.returncode == 0, err
    used_by_steady = [int(i) for line in out.splitlines() if line.startswith("events") for i in line.split()[1:]]
    assert sorted(set(used_by_slow + used_by_steady)) == list(range(events)), "nothing lost with the worker"
    # At least once: only the batch the slow rank's loop was in when its worker died comes again.
    assert set(used_by_slow) & set(used_by_steady) <= set(used_by_slow[-8:])


def test_whole_batches_as_writable_tensors_or_read_only_without_warnings(client):
    with StreamDataset.from_config(client, tof_request(events=32, batch_size=8), per_event=False, copy=True) as events:
        batches = list(events)
    assert [b["tof"].shape for b in batches] == [(8, 2, 256)] * 4
    batches[0]["tof"].add_(1)  # writable: a copy of its own
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with StreamDataset.from_config(client, tof_request(events=32, batch_size=8)) as events:
            items = list(events)
    assert len(items) == 32 and items[0]["tof"].shape == (2, 256)
    assert not [w for w in caught if "not writable" in str(w.message)], "torch's read-only path, without its warning"


def test_hdf5_payloads_become_tensors(client):
    with StreamDataset.from_config(client, tof_request(events=32, batch_size=16, serializer="SERIALIZER_HDF5")) as events:
        items = list(StreamLoader(events, batch_size=4))
    assert sum(len(b["event_index"]) for b in items) == 32
    assert items[0]["tof"].shape == (4, 2, 256)
    assert "timestamp" in items[0]


def test_a_seeded_shuffle_buffer_reorders_and_keeps_every_event(client):
    with StreamDataset.from_config(client, tof_request(events=160, batch_size=8), fields=["tof"], shuffle_buffer=64, seed=5) as events:
        indices = [item["event_index"] for item in events]
    assert sorted(indices) == list(range(160))
    assert indices != sorted(indices)


def test_an_exception_in_the_loop_cancels_the_request_unless_kept(client):
    with pytest.raises(ZeroDivisionError):
        with StreamDataset.from_config(client, tof_request(events=4000, batch_size=8)) as events:
            for _ in StreamLoader(events, batch_size=4, num_workers=1):
                1 / 0
    assert client.get_request(events.name).state == CANCELED
    with pytest.raises(ZeroDivisionError):
        with StreamDataset.from_config(client, tof_request(events=64, batch_size=8), keep=True) as kept:
            for _ in kept:
                1 / 0
    assert client.get_request(kept.name).state != CANCELED


def test_resumes_from_its_journal(client, tmp_path):
    request = client.create_request(tof_request(events=240, batch_size=8))
    first = []
    events = StreamDataset(client, request.name, fields=["tof"], journal_dir=tmp_path / "journal")
    for batch in StreamLoader(events, batch_size=8, num_workers=2):
        last = batch["event_index"].tolist()
        first += last
        if len(first) >= 80:
            break  # stopped mid-epoch: what the loop used before its last batch is acknowledged and journaled
    journaled = [json.loads(line) for line in (tmp_path / "journal" / "received.jsonl").read_text().splitlines()]
    assert sum(e["events"] for e in journaled) <= len(first)
    again = StreamDataset(client, request.name, fields=["tof"], journal_dir=tmp_path / "journal")
    second = [i for batch in StreamLoader(again, batch_size=8, num_workers=2) for i in batch["event_index"].tolist()]
    assert sorted(set(first) | set(second)) == list(range(240)), "nothing lost over both runs"
    assert set(first) & set(second) <= set(last), "only the batch the first loop was in when it stopped comes again"


def test_the_training_example_learns_hits(endpoints):
    example = Path(__file__).parent.parent / "examples" / "train_hits.py"
    run = subprocess.run(
        [sys.executable, str(example), endpoints["request"], endpoints["certDir"], "--epochs", "5"], capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    assert run.returncode == 0, run.stderr
    accuracy = [float(line.split("test accuracy")[1].split()[0]) for line in run.stdout.splitlines() if "test accuracy" in line]
    assert len(accuracy) == 5, run.stdout
    # Half the frames are hits: chance is 0.5 (a standard deviation of 0.03 on 256 test frames), and
    # 0.85 is far past anything chance gives. Five epochs passed 0.9 in each of three runs here.
    assert accuracy[-1] >= 0.85, run.stdout
