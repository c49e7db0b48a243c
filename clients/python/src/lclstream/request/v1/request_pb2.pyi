import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lclstream.buffer.v1 import buffer_pb2 as _buffer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Serializer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERIALIZER_UNSPECIFIED: _ClassVar[Serializer]
    SERIALIZER_NATIVE: _ClassVar[Serializer]
    SERIALIZER_HDF5: _ClassVar[Serializer]
SERIALIZER_UNSPECIFIED: Serializer
SERIALIZER_NATIVE: Serializer
SERIALIZER_HDF5: Serializer

class DataRequest(_message.Message):
    __slots__ = ("name", "owner", "experiment", "producer", "consumer_groups", "readers", "parallelism", "backend", "batch_size", "serializer", "buffer_capacity_bytes", "durable", "restart_on_failure", "state", "state_reason", "stream", "buffer_endpoint", "jobs", "metrics", "create_time", "update_time", "end_time", "config_notes", "shard_count", "shards", "expected_event_count")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[DataRequest.State]
        STATE_PENDING: _ClassVar[DataRequest.State]
        STATE_RUNNING: _ClassVar[DataRequest.State]
        STATE_DRAINING: _ClassVar[DataRequest.State]
        STATE_SUCCEEDED: _ClassVar[DataRequest.State]
        STATE_FAILED: _ClassVar[DataRequest.State]
        STATE_CANCELED: _ClassVar[DataRequest.State]
    STATE_UNSPECIFIED: DataRequest.State
    STATE_PENDING: DataRequest.State
    STATE_RUNNING: DataRequest.State
    STATE_DRAINING: DataRequest.State
    STATE_SUCCEEDED: DataRequest.State
    STATE_FAILED: DataRequest.State
    STATE_CANCELED: DataRequest.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    READERS_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SERIALIZER_FIELD_NUMBER: _ClassVar[int]
    BUFFER_CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    RESTART_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    BUFFER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_NOTES_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    experiment: str
    producer: _struct_pb2.Struct
    consumer_groups: _containers.RepeatedCompositeFieldContainer[_buffer_pb2.ConsumerGroup]
    readers: _containers.RepeatedScalarFieldContainer[str]
    parallelism: int
    backend: str
    batch_size: int
    serializer: Serializer
    buffer_capacity_bytes: int
    durable: bool
    restart_on_failure: bool
    state: DataRequest.State
    state_reason: str
    stream: str
    buffer_endpoint: str
    jobs: _containers.RepeatedScalarFieldContainer[str]
    metrics: DataRequestMetrics
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    config_notes: _containers.RepeatedScalarFieldContainer[str]
    shard_count: int
    shards: _containers.RepeatedCompositeFieldContainer[StreamShard]
    expected_event_count: int
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., experiment: _Optional[str] = ..., producer: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., consumer_groups: _Optional[_Iterable[_Union[_buffer_pb2.ConsumerGroup, _Mapping]]] = ..., readers: _Optional[_Iterable[str]] = ..., parallelism: _Optional[int] = ..., backend: _Optional[str] = ..., batch_size: _Optional[int] = ..., serializer: _Optional[_Union[Serializer, str]] = ..., buffer_capacity_bytes: _Optional[int] = ..., durable: bool = ..., restart_on_failure: bool = ..., state: _Optional[_Union[DataRequest.State, str]] = ..., state_reason: _Optional[str] = ..., stream: _Optional[str] = ..., buffer_endpoint: _Optional[str] = ..., jobs: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Union[DataRequestMetrics, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., config_notes: _Optional[_Iterable[str]] = ..., shard_count: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[StreamShard, _Mapping]]] = ..., expected_event_count: _Optional[int] = ...) -> None: ...

class DataRequestMetrics(_message.Message):
    __slots__ = ("events", "batches", "bytes", "events_per_second", "bytes_per_second", "groups", "jobs")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    events: int
    batches: int
    bytes: int
    events_per_second: float
    bytes_per_second: float
    groups: _containers.RepeatedCompositeFieldContainer[_buffer_pb2.GroupMetrics]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, events: _Optional[int] = ..., batches: _Optional[int] = ..., bytes: _Optional[int] = ..., events_per_second: _Optional[float] = ..., bytes_per_second: _Optional[float] = ..., groups: _Optional[_Iterable[_Union[_buffer_pb2.GroupMetrics, _Mapping]]] = ..., jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class StreamShard(_message.Message):
    __slots__ = ("index", "buffer_endpoint", "stream", "producer_ranks", "buffer_route")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BUFFER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_RANKS_FIELD_NUMBER: _ClassVar[int]
    BUFFER_ROUTE_FIELD_NUMBER: _ClassVar[int]
    index: int
    buffer_endpoint: str
    stream: str
    producer_ranks: _containers.RepeatedScalarFieldContainer[int]
    buffer_route: str
    def __init__(self, index: _Optional[int] = ..., buffer_endpoint: _Optional[str] = ..., stream: _Optional[str] = ..., producer_ranks: _Optional[_Iterable[int]] = ..., buffer_route: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job", "state", "info", "jobndx")
    JOB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    JOBNDX_FIELD_NUMBER: _ClassVar[int]
    job: str
    state: str
    info: str
    jobndx: int
    def __init__(self, job: _Optional[str] = ..., state: _Optional[str] = ..., info: _Optional[str] = ..., jobndx: _Optional[int] = ...) -> None: ...

class CreateDataRequestRequest(_message.Message):
    __slots__ = ("data_request", "request_id", "validate_only")
    DATA_REQUEST_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    data_request: DataRequest
    request_id: str
    validate_only: bool
    def __init__(self, data_request: _Optional[_Union[DataRequest, _Mapping]] = ..., request_id: _Optional[str] = ..., validate_only: bool = ...) -> None: ...

class CreateDataRequestResponse(_message.Message):
    __slots__ = ("data_request",)
    DATA_REQUEST_FIELD_NUMBER: _ClassVar[int]
    data_request: DataRequest
    def __init__(self, data_request: _Optional[_Union[DataRequest, _Mapping]] = ...) -> None: ...

class GetDataRequestRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDataRequestResponse(_message.Message):
    __slots__ = ("data_request",)
    DATA_REQUEST_FIELD_NUMBER: _ClassVar[int]
    data_request: DataRequest
    def __init__(self, data_request: _Optional[_Union[DataRequest, _Mapping]] = ...) -> None: ...

class ListDataRequestsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "owner")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: DataRequest.State
    owner: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[DataRequest.State, str]] = ..., owner: _Optional[str] = ...) -> None: ...

class ListDataRequestsResponse(_message.Message):
    __slots__ = ("data_requests", "next_page_token")
    DATA_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    data_requests: _containers.RepeatedCompositeFieldContainer[DataRequest]
    next_page_token: str
    def __init__(self, data_requests: _Optional[_Iterable[_Union[DataRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelDataRequestRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelDataRequestResponse(_message.Message):
    __slots__ = ("data_request",)
    DATA_REQUEST_FIELD_NUMBER: _ClassVar[int]
    data_request: DataRequest
    def __init__(self, data_request: _Optional[_Union[DataRequest, _Mapping]] = ...) -> None: ...

class WatchDataRequestRequest(_message.Message):
    __slots__ = ("name", "interval_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    interval_ms: int
    def __init__(self, name: _Optional[str] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class WatchDataRequestResponse(_message.Message):
    __slots__ = ("data_request",)
    DATA_REQUEST_FIELD_NUMBER: _ClassVar[int]
    data_request: DataRequest
    def __init__(self, data_request: _Optional[_Union[DataRequest, _Mapping]] = ...) -> None: ...

class WatchShardAssignmentRequest(_message.Message):
    __slots__ = ("name", "consumer_group")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    consumer_group: str
    def __init__(self, name: _Optional[str] = ..., consumer_group: _Optional[str] = ...) -> None: ...

class WatchShardAssignmentResponse(_message.Message):
    __slots__ = ("member_id", "generation", "shards", "member_count", "complete")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    generation: int
    shards: _containers.RepeatedScalarFieldContainer[int]
    member_count: int
    complete: bool
    def __init__(self, member_id: _Optional[str] = ..., generation: _Optional[int] = ..., shards: _Optional[_Iterable[int]] = ..., member_count: _Optional[int] = ..., complete: bool = ...) -> None: ...
