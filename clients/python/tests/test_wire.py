"""lclstream_client.wire: Subscribe responses parsed with their arrays' bytes cut out as views (no network)."""
import numpy as np
import pytest
from google.protobuf.message import DecodeError

from lclstream.buffer.v1 import buffer_pb2
from lclstream.data.v1 import data_pb2
from lclstream_client import wire
from lclstream_client.client import Batch


def response(**columns: bytes) -> buffer_pb2.SubscribeResponse:
    r = buffer_pb2.SubscribeResponse(seq=7, redelivery=True)
    r.batch.stream, r.batch.seq, r.batch.producer_rank = "streams/s", 3, 1
    r.batch.event_indices.extend([10, 11])
    r.batch.event_time_unix_ns.extend([5, 6])
    for name, data in columns.items():
        a = r.batch.columns.fields[name]
        a.dtype, a.data = data_pb2.DATA_TYPE_UINT8, data
        a.shape.extend([2, len(data) // 2])
    return r


def test_the_field_numbers_walked_are_the_protos():
    assert buffer_pb2.SubscribeResponse.DESCRIPTOR.fields_by_name["batch"].number == wire._BATCH
    assert data_pb2.EventBatch.DESCRIPTOR.fields_by_name["columns"].number == wire._COLUMNS
    assert data_pb2.Columns.DESCRIPTOR.fields_by_name["fields"].number == wire._FIELDS
    entry = data_pb2.Columns.DESCRIPTOR.fields_by_name["fields"].message_type
    assert (entry.fields_by_name["key"].number, entry.fields_by_name["value"].number) == (wire._KEY, wire._VALUE)
    assert data_pb2.Array.DESCRIPTOR.fields_by_name["data"].number == wire._DATA


def test_large_arrays_come_as_views_of_the_message_and_the_rest_as_parsed():
    big, other, small = bytes(range(256)) * 64, b"\x07" * 5000, b"\x01\x02\x03\x04"
    sent = response(frame=big, other=other, small=small)
    raw = sent.SerializeToString()
    got = wire.received(raw)
    assert set(got.views) == {"frame", "other"}
    assert bytes(got.views["frame"]) == big and bytes(got.views["other"]) == other
    assert got.views["frame"].obj is raw, "a view of what grpc received, not a copy"
    assert got.size == len(raw)
    # Everything else as the protobuf runtime parses it, the cut arrays' data empty.
    expected = buffer_pb2.SubscribeResponse.FromString(raw)
    for name in ("frame", "other"):
        expected.batch.columns.fields[name].data = b""
    assert got.response == expected
    batch = Batch.from_proto(got.response.seq, got.response.batch, views=got.views)
    assert batch.arrays["frame"].tobytes() == big and batch.arrays["small"].tobytes() == small
    assert batch.arrays["frame"].shape == (2, len(big) // 2)


def test_a_key_given_twice_takes_the_last_entry_as_protobuf_does():
    first = response(frame=b"\x01" * 8192).SerializeToString()
    second = response(frame=b"\x02" * 16).SerializeToString()  # too small to cut
    got = wire.received(first + second)  # concatenated messages merge
    assert "frame" not in got.views
    assert got.response.batch.columns.fields["frame"].data == b"\x02" * 16


def test_other_messages_are_parsed_whole():
    for r in (
        buffer_pb2.SubscribeResponse(started=buffer_pb2.SubscribeStarted(consumer_id="c1", max_in_flight=32)),
        buffer_pb2.SubscribeResponse(end_of_stream=data_pb2.StreamTotals(batch_count=3)),
        buffer_pb2.SubscribeResponse(batch=data_pb2.EventBatch(serialized=data_pb2.SerializedPayload(data=b"h" * 9000))),
    ):
        got = wire.received(r.SerializeToString())
        assert got.response == r and got.views == {}


def test_a_malformed_message_fails_as_protobuf_says():
    raw = response(frame=b"\x01" * 8192).SerializeToString()
    with pytest.raises(DecodeError):
        wire.received(raw[:-10])
