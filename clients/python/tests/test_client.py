"""The Python client against the real mesh: whole requests, HDF5, resume after a kill, enrollment, refusals."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tof_request
from lclstream.request.v1 import request_pb2
from lclstream_client import Client, EventDataset, LclstreamError, enroll


def test_streams_a_request_as_numpy_arrays_and_checks_the_totals(client):
    request = client.create_request(tof_request(events=96, batch_size=8))
    stream = client.batches(request.name)
    seqs, events = [], 0
    for batch in stream:
        assert batch.arrays["tof"].shape == (len(batch.event_indices), 2, 256)
        assert batch.arrays["tof"].dtype == np.dtype("<i2") or batch.arrays["tof"].dtype.kind in "iuf"
        seqs.append(batch.seq)
        events += len(batch.event_indices)
    assert sorted(seqs) == list(range(1, 13))
    assert events == 96
    assert stream.totals.batch_count == 12 and stream.totals.event_count == 96
    for _ in range(100):
        if client.get_request(request.name).state == request_pb2.DataRequest.STATE_SUCCEEDED:
            break
        time.sleep(0.1)
    assert client.get_request(request.name).state == request_pb2.DataRequest.STATE_SUCCEEDED


def test_reads_every_shard_of_a_sharded_request_as_one_stream(client, tmp_path):
    request = client.create_request(tof_request(events=120, batch_size=4, parallelism=4, shard_count=3))
    stream = client.batches(request.name, journal_dir=tmp_path / "journal")
    indices, shards = [], set()
    for batch in stream:
        indices += batch.event_indices.tolist()
        shards.add(batch.shard)
        assert batch.producer_rank % 3 == batch.shard, "rank r publishes to shard r % 3"
    assert sorted(indices) == list(range(120)), "every event once, from every shard"
    assert shards == {0, 1, 2}
    assert (stream.totals.batch_count, stream.totals.event_count) == (32, 120)  # 30 events a rank: 8 batches of 4 or fewer
    assert [p.producer_rank for p in stream.totals.producer_totals] == [0, 1, 2, 3]
    journaled = {(e.get("shard"), e["seq"]) for e in map(json.loads, (tmp_path / "journal" / "received.jsonl").read_text().splitlines())}
    assert len(journaled) == 32 and {shard for shard, _ in journaled} == {0, 1, 2}
    # Iterated again on the same journal: nothing new arrives, and the totals still check.
    again = client.batches(request.name, journal_dir=tmp_path / "journal")
    assert list(again) == [] and again.totals.event_count == 120


def test_consumers_of_an_assigned_group_divide_the_shards(client):
    config = tof_request(events=120, batch_size=4, parallelism=4, shard_count=3)
    config["producer"]["event_source"].update(rate_hz=60, paced=True)
    config["consumer_groups"] = [{"name": "workers", "shard_assignment": "SHARD_ASSIGNMENT_ASSIGNED"}]
    request = client.create_request(config)
    got: dict[str, list] = {"first": [], "second": []}
    joined = threading.Event()

    def consume(who: str) -> None:
        for batch in client.batches(request.name, "workers"):
            got[who].append((batch.shard, batch.event_indices.tolist()))
            if len(got["first"]) >= 2:
                joined.set()

    first = threading.Thread(target=consume, args=("first",))
    first.start()
    assert joined.wait(30), "the first consumer reads"
    second = threading.Thread(target=consume, args=("second",))  # joins: the group rebalances
    second.start()
    first.join(60)
    second.join(60)
    events = [i for who in got for _, indices in got[who] for i in indices]
    assert sorted(set(events)) == list(range(120)), "every event, at least once, between the two"
    assert got["second"], "the second consumer was given shards"
    late = {shard for shard, _ in got["second"]}
    assert len(late) < 3, "the second consumer read only its share of the shards"


def test_reads_hdf5_payloads_with_h5py(client, tmp_path):
    config = tof_request(events=32, batch_size=16, serializer="SERIALIZER_HDF5")
    batches = list(client.stream(config))
    assert len(batches) == 2
    with batches[0].h5() as f:
        # lclstreamer's layout: the fields at /data/<name>, chunks of one event; the batch carries the event indices.
        assert f["data/tof"].shape == (16, 2, 256)
        assert f["data/tof"].chunks == (1, 2, 256)
        assert sorted(f["data"].keys()) == ["timestamp", "tof"]
    assert list(batches[0].event_indices) == list(range(16))
    with pytest.raises(ValueError, match="columns, not HDF5"):
        list(client.stream(tof_request(events=8)))[0].h5()


def test_resumes_after_the_consumer_process_is_killed(client, tmp_path, endpoints):
    request = client.create_request(tof_request(events=160, batch_size=8))
    journal = tmp_path / "run"
    # A consumer in its own process that reports each batch, killed mid-stream.
    script = (
        "import sys, time\n"
        "from lclstream_client import Client\n"
        f"c = Client.from_cert_dir({endpoints['request']!r}, {endpoints['certDir']!r})\n"
        f"for b in c.batches({request.name!r}, journal_dir={str(journal)!r}, ack_every=1):\n"
        "    print(b.seq, flush=True); time.sleep(0.05)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ})
    for _ in range(5):
        assert child.stdout.readline(), "the first consumer got batches"
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = len((journal / "received.jsonl").read_text().splitlines())
    assert 0 < before < 20
    stream = client.batches(request.name, journal_dir=journal)
    resumed = [b.seq for b in stream]
    assert stream.resumed_batches == before
    lines = (journal / "received.jsonl").read_text().splitlines()
    seqs = [int(__import__("json").loads(line)["seq"]) for line in lines]
    assert sorted(seqs) == list(range(1, 21)), "every batch once over both runs"
    assert len(resumed) == 20 - before
    assert stream.totals.batch_count == 20 and stream.totals.event_count == 160


def test_feeds_an_iterable_dataset_one_event_at_a_time(client):
    request = client.create_request(tof_request(events=24, batch_size=8))
    samples = list(EventDataset(client, request.name, fields=["tof"], transform=lambda s: (s["event_index"], s["tof"].sum())))
    assert sorted(int(i) for i, _ in samples) == list(range(24))


def test_an_hdf5_batch_gives_its_events_too(client):
    request = client.create_request(tof_request(events=16, batch_size=8, serializer="SERIALIZER_HDF5"))
    samples = list(EventDataset(client, request.name, fields=["tof"]))
    assert sorted(int(s["event_index"]) for s in samples) == list(range(16))
    assert samples[0]["tof"].shape == (2, 256) and samples[0]["tof"].any()


def test_leaving_the_loop_early_cancels_the_request_it_created(client):
    stream = client.stream(tof_request(events=4000, batch_size=8))
    for _ in stream:
        break
    request = client.get_request(stream.request.name)
    assert request.state == request_pb2.DataRequest.STATE_CANCELED
    assert "the consumer stopped" in request.state_reason


def test_enrolls_with_a_token_and_uses_the_new_certificate(endpoints, tmp_path):
    out = enroll(endpoints["enroll"], os.environ["LCLSTREAM_TEST_TOKEN"], tmp_path / "certs")
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    with Client.from_cert_dir(endpoints["request"], out) as mine:
        with pytest.raises(LclstreamError) as refused:
            mine.get_request("dataRequests/0000000000000000")
        assert refused.value.code == "NOT_FOUND"  # authenticated: the service looked it up
    with pytest.raises(LclstreamError) as reused:
        enroll(endpoints["enroll"], os.environ["LCLSTREAM_TEST_TOKEN"], tmp_path / "again")
    assert reused.value.code in ("PERMISSION_DENIED", "FAILED_PRECONDITION", "UNAUTHENTICATED")


def test_without_a_certificate_says_so_quickly(endpoints, tmp_path):
    with pytest.raises(LclstreamError, match="enroll first"):
        Client.from_cert_dir(endpoints["request"], tmp_path)
    started = time.monotonic()
    anonymous = Client(endpoints["request"], ca_pem=Path(endpoints["certDir"], "ca.crt").read_bytes(), timeout=10)
    with pytest.raises(LclstreamError) as refused:
        anonymous.get_request("dataRequests/x")
    assert refused.value.code == "UNAVAILABLE"
    assert "client certificate" in refused.value.message
    assert time.monotonic() - started < 9, "a refusal, not a wait for the deadline"


def test_a_revoked_certificate_is_refused_with_a_clear_error(endpoints):
    started = time.monotonic()
    with Client.from_cert_dir(endpoints["request"], os.environ["LCLSTREAM_REVOKED_CERT_DIR"], timeout=10) as revoked:
        with pytest.raises(LclstreamError) as refused:
            revoked.get_request("dataRequests/x")
    assert "revoked" in str(refused.value)
    assert time.monotonic() - started < 9


def test_bad_config_is_refused_before_anything_is_sent(client):
    with pytest.raises(LclstreamError, match="not a data request"):
        client.create_request({"no_such_field": 1})
    with pytest.raises(LclstreamError) as refused:
        client.create_request({"producer": {"source_identifier": "synthetic:tof:run=1", "event_source": {"type": "nope"}}})
    assert refused.value.code == "INVALID_ARGUMENT"


def test_joins_the_requests_own_group_when_none_is_named(client):
    groups = [{"name": "viewer", "mode": "DELIVERY_MODE_LATEST_ONLY"}, {"name": "analysis", "mode": "DELIVERY_MODE_RELIABLE"}]
    stream = client.stream(tof_request(events=16, batch_size=8, consumer_groups=groups))
    assert sum(len(b.event_indices) for b in stream) == 16
    assert stream.group == "analysis"
    assert stream.totals.event_count == 16


def test_an_error_in_the_loop_cancels_the_request_it_created(client):
    stream = client.stream(tof_request(events=4000, batch_size=8))
    with pytest.raises(ZeroDivisionError):
        for _ in stream:
            1 / 0
    request = client.get_request(stream.request.name)
    assert request.state == request_pb2.DataRequest.STATE_CANCELED


def test_a_stream_that_fails_cancels_the_request_it_created(client):
    stream = client.stream(tof_request(events=4000, batch_size=8), group="no-such-group")
    with pytest.raises(LclstreamError) as refused:
        for _ in stream:
            pass
    assert refused.value.reason == "UNKNOWN_GROUP"
    request = client.get_request(stream.request.name)
    assert request.state == request_pb2.DataRequest.STATE_CANCELED
    assert "LclstreamError" in request.state_reason


def test_acknowledges_half_the_window_the_buffer_gives_in_batches_or_bytes():
    from lclstream_client.client import _Acker

    sent: list[list[int]] = []

    class Answered:
        def done(self) -> bool:
            return True

        def result(self) -> None:
            return None

    class Buffer:
        class Ack:
            @staticmethod
            def future(request, timeout, metadata):
                sent.append(list(request.seqs))
                return Answered()

    acker = _Acker(Buffer(), "streams/s", "g", None)
    try:
        for seq in range(1, 9):
            acker.add(seq, 1 << 30)
        assert sent == [list(range(1, 9))], "before the started message: groups of 8, whatever their bytes"
        acker.use_window(1024, 1000)
        acker.add(9, 300)
        assert len(sent) == 1
        acker.add(10, 200)
        assert sent[-1] == [9, 10], "half the window's bytes"
        acker.use_window(4, 0)
        acker.add(11, 1 << 30)
        acker.add(12)
        assert sent[-1] == [11, 12], "no byte limit: half the window's batches"
        fixed = _Acker(Buffer(), "streams/s", "g", 3)
        fixed.use_window(1024, 0)
        for seq in (13, 14, 15):
            fixed.add(seq, 10_000)
        assert sent[-1] == [13, 14, 15], "ack_every given: its count"
        fixed.use_window(1024, 1000)
        fixed.add(16, 10_000)
        assert sent[-1] == [16], "and half the window's bytes still"
        fixed.close()
    finally:
        acker.close()
