import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lclstream.data.v1 import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ShardAssignment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARD_ASSIGNMENT_UNSPECIFIED: _ClassVar[ShardAssignment]
    SHARD_ASSIGNMENT_MERGED: _ClassVar[ShardAssignment]
    SHARD_ASSIGNMENT_ASSIGNED: _ClassVar[ShardAssignment]

class DeliveryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_MODE_UNSPECIFIED: _ClassVar[DeliveryMode]
    DELIVERY_MODE_RELIABLE: _ClassVar[DeliveryMode]
    DELIVERY_MODE_LATEST_ONLY: _ClassVar[DeliveryMode]
SHARD_ASSIGNMENT_UNSPECIFIED: ShardAssignment
SHARD_ASSIGNMENT_MERGED: ShardAssignment
SHARD_ASSIGNMENT_ASSIGNED: ShardAssignment
DELIVERY_MODE_UNSPECIFIED: DeliveryMode
DELIVERY_MODE_RELIABLE: DeliveryMode
DELIVERY_MODE_LATEST_ONLY: DeliveryMode

class Stream(_message.Message):
    __slots__ = ("name", "owner", "readers", "capacity_bytes", "retention_bytes", "durable", "producer_count", "consumer_groups", "request", "state", "state_reason", "metrics", "create_time", "shard_count", "shard_index")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Stream.State]
        STATE_OPEN: _ClassVar[Stream.State]
        STATE_COMPLETE: _ClassVar[Stream.State]
        STATE_DRAINED: _ClassVar[Stream.State]
        STATE_LOST: _ClassVar[Stream.State]
    STATE_UNSPECIFIED: Stream.State
    STATE_OPEN: Stream.State
    STATE_COMPLETE: Stream.State
    STATE_DRAINED: Stream.State
    STATE_LOST: Stream.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    READERS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    RETENTION_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    readers: _containers.RepeatedScalarFieldContainer[str]
    capacity_bytes: int
    retention_bytes: int
    durable: bool
    producer_count: int
    consumer_groups: _containers.RepeatedCompositeFieldContainer[ConsumerGroup]
    request: str
    state: Stream.State
    state_reason: str
    metrics: StreamMetrics
    create_time: _timestamp_pb2.Timestamp
    shard_count: int
    shard_index: int
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., readers: _Optional[_Iterable[str]] = ..., capacity_bytes: _Optional[int] = ..., retention_bytes: _Optional[int] = ..., durable: bool = ..., producer_count: _Optional[int] = ..., consumer_groups: _Optional[_Iterable[_Union[ConsumerGroup, _Mapping]]] = ..., request: _Optional[str] = ..., state: _Optional[_Union[Stream.State, str]] = ..., state_reason: _Optional[str] = ..., metrics: _Optional[_Union[StreamMetrics, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shard_count: _Optional[int] = ..., shard_index: _Optional[int] = ...) -> None: ...

class ConsumerGroup(_message.Message):
    __slots__ = ("name", "mode", "max_in_flight", "ack_timeout_ms", "shard_assignment", "max_in_flight_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    ACK_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    SHARD_ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    mode: DeliveryMode
    max_in_flight: int
    ack_timeout_ms: int
    shard_assignment: ShardAssignment
    max_in_flight_bytes: int
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[_Union[DeliveryMode, str]] = ..., max_in_flight: _Optional[int] = ..., ack_timeout_ms: _Optional[int] = ..., shard_assignment: _Optional[_Union[ShardAssignment, str]] = ..., max_in_flight_bytes: _Optional[int] = ...) -> None: ...

class StreamMetrics(_message.Message):
    __slots__ = ("published_batches", "published_events", "published_bytes", "buffered_batches", "buffered_bytes", "publish_bytes_per_second", "producers", "groups", "first_batch_time")
    PUBLISHED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_BYTES_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PRODUCERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BATCH_TIME_FIELD_NUMBER: _ClassVar[int]
    published_batches: int
    published_events: int
    published_bytes: int
    buffered_batches: int
    buffered_bytes: int
    publish_bytes_per_second: float
    producers: _containers.RepeatedCompositeFieldContainer[ProducerMetrics]
    groups: _containers.RepeatedCompositeFieldContainer[GroupMetrics]
    first_batch_time: _timestamp_pb2.Timestamp
    def __init__(self, published_batches: _Optional[int] = ..., published_events: _Optional[int] = ..., published_bytes: _Optional[int] = ..., buffered_batches: _Optional[int] = ..., buffered_bytes: _Optional[int] = ..., publish_bytes_per_second: _Optional[float] = ..., producers: _Optional[_Iterable[_Union[ProducerMetrics, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[GroupMetrics, _Mapping]]] = ..., first_batch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProducerMetrics(_message.Message):
    __slots__ = ("producer_rank", "next_seq", "events", "done", "connected")
    PRODUCER_RANK_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    producer_rank: int
    next_seq: int
    events: int
    done: bool
    connected: bool
    def __init__(self, producer_rank: _Optional[int] = ..., next_seq: _Optional[int] = ..., events: _Optional[int] = ..., done: bool = ..., connected: bool = ...) -> None: ...

class GroupMetrics(_message.Message):
    __slots__ = ("group", "consumers", "delivered_batches", "delivered_bytes", "acked_batches", "redelivered_batches", "lag_batches", "deliver_bytes_per_second", "end_of_stream_delivered")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACKED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    REDELIVERED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    LAG_BATCHES_FIELD_NUMBER: _ClassVar[int]
    DELIVER_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    group: str
    consumers: int
    delivered_batches: int
    delivered_bytes: int
    acked_batches: int
    redelivered_batches: int
    lag_batches: int
    deliver_bytes_per_second: float
    end_of_stream_delivered: bool
    def __init__(self, group: _Optional[str] = ..., consumers: _Optional[int] = ..., delivered_batches: _Optional[int] = ..., delivered_bytes: _Optional[int] = ..., acked_batches: _Optional[int] = ..., redelivered_batches: _Optional[int] = ..., lag_batches: _Optional[int] = ..., deliver_bytes_per_second: _Optional[float] = ..., end_of_stream_delivered: bool = ...) -> None: ...

class CreateStreamRequest(_message.Message):
    __slots__ = ("stream", "stream_id", "request_id")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    stream_id: str
    request_id: str
    def __init__(self, stream: _Optional[_Union[Stream, _Mapping]] = ..., stream_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateStreamResponse(_message.Message):
    __slots__ = ("stream", "publish_token")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    publish_token: str
    def __init__(self, stream: _Optional[_Union[Stream, _Mapping]] = ..., publish_token: _Optional[str] = ...) -> None: ...

class GetStreamRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetStreamResponse(_message.Message):
    __slots__ = ("stream",)
    STREAM_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    def __init__(self, stream: _Optional[_Union[Stream, _Mapping]] = ...) -> None: ...

class ListStreamsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStreamsResponse(_message.Message):
    __slots__ = ("streams", "next_page_token")
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[Stream]
    next_page_token: str
    def __init__(self, streams: _Optional[_Iterable[_Union[Stream, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteStreamRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteStreamResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("open", "batch", "done")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    open: PublishOpen
    batch: _data_pb2.EventBatch
    done: PublishDone
    def __init__(self, open: _Optional[_Union[PublishOpen, _Mapping]] = ..., batch: _Optional[_Union[_data_pb2.EventBatch, _Mapping]] = ..., done: _Optional[_Union[PublishDone, _Mapping]] = ...) -> None: ...

class PublishOpen(_message.Message):
    __slots__ = ("stream", "producer_rank", "publish_token")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_RANK_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    stream: str
    producer_rank: int
    publish_token: str
    def __init__(self, stream: _Optional[str] = ..., producer_rank: _Optional[int] = ..., publish_token: _Optional[str] = ...) -> None: ...

class PublishDone(_message.Message):
    __slots__ = ("batch_count", "event_count", "skipped_event_count")
    BATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    batch_count: int
    event_count: int
    skipped_event_count: int
    def __init__(self, batch_count: _Optional[int] = ..., event_count: _Optional[int] = ..., skipped_event_count: _Optional[int] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("accepted_batches", "duplicate_batches", "next_seq")
    ACCEPTED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_BATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    accepted_batches: int
    duplicate_batches: int
    next_seq: int
    def __init__(self, accepted_batches: _Optional[int] = ..., duplicate_batches: _Optional[int] = ..., next_seq: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("stream", "consumer_group", "max_in_flight", "start_seq", "max_in_flight_bytes")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_BYTES_FIELD_NUMBER: _ClassVar[int]
    stream: str
    consumer_group: str
    max_in_flight: int
    start_seq: int
    max_in_flight_bytes: int
    def __init__(self, stream: _Optional[str] = ..., consumer_group: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., start_seq: _Optional[int] = ..., max_in_flight_bytes: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("seq", "started", "batch", "end_of_stream", "heartbeat", "redelivery")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    REDELIVERY_FIELD_NUMBER: _ClassVar[int]
    seq: int
    started: SubscribeStarted
    batch: _data_pb2.EventBatch
    end_of_stream: _data_pb2.StreamTotals
    heartbeat: SubscribeHeartbeat
    redelivery: bool
    def __init__(self, seq: _Optional[int] = ..., started: _Optional[_Union[SubscribeStarted, _Mapping]] = ..., batch: _Optional[_Union[_data_pb2.EventBatch, _Mapping]] = ..., end_of_stream: _Optional[_Union[_data_pb2.StreamTotals, _Mapping]] = ..., heartbeat: _Optional[_Union[SubscribeHeartbeat, _Mapping]] = ..., redelivery: bool = ...) -> None: ...

class SubscribeStarted(_message.Message):
    __slots__ = ("consumer_id", "consumer_group", "max_in_flight", "max_in_flight_bytes")
    CONSUMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_BYTES_FIELD_NUMBER: _ClassVar[int]
    consumer_id: str
    consumer_group: str
    max_in_flight: int
    max_in_flight_bytes: int
    def __init__(self, consumer_id: _Optional[str] = ..., consumer_group: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., max_in_flight_bytes: _Optional[int] = ...) -> None: ...

class SubscribeHeartbeat(_message.Message):
    __slots__ = ("buffered_batches", "caught_up")
    BUFFERED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    buffered_batches: int
    caught_up: bool
    def __init__(self, buffered_batches: _Optional[int] = ..., caught_up: bool = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("stream", "consumer_group", "consumer_id", "seqs")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    consumer_group: str
    consumer_id: str
    seqs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, stream: _Optional[str] = ..., consumer_group: _Optional[str] = ..., consumer_id: _Optional[str] = ..., seqs: _Optional[_Iterable[int]] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("acked_count",)
    ACKED_COUNT_FIELD_NUMBER: _ClassVar[int]
    acked_count: int
    def __init__(self, acked_count: _Optional[int] = ...) -> None: ...
