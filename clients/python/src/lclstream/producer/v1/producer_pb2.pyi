import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lclstream.data.v1 import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(_message.Message):
    __slots__ = ("name", "type", "description", "runs", "fields")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("name", "event_count", "start_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    event_count: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., event_count: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Field(_message.Message):
    __slots__ = ("name", "dtype", "shape", "description", "unit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: _data_pb2.DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    description: str
    unit: str
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[_data_pb2.DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., description: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class Pipeline(_message.Message):
    __slots__ = ("id", "owner", "source_type", "rank", "rank_count", "events", "batches", "bytes", "events_per_second", "start_time", "skipped_events")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    RANK_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    source_type: str
    rank: int
    rank_count: int
    events: int
    batches: int
    bytes: int
    events_per_second: float
    start_time: _timestamp_pb2.Timestamp
    skipped_events: int
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., source_type: _Optional[str] = ..., rank: _Optional[int] = ..., rank_count: _Optional[int] = ..., events: _Optional[int] = ..., batches: _Optional[int] = ..., bytes: _Optional[int] = ..., events_per_second: _Optional[float] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., skipped_events: _Optional[int] = ...) -> None: ...

class ListSourcesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources", "next_page_token")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    next_page_token: str
    def __init__(self, sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ProduceRequest(_message.Message):
    __slots__ = ("config", "rank", "rank_count", "start_event", "max_events")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    RANK_COUNT_FIELD_NUMBER: _ClassVar[int]
    START_EVENT_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    config: _struct_pb2.Struct
    rank: int
    rank_count: int
    start_event: int
    max_events: int
    def __init__(self, config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., rank: _Optional[int] = ..., rank_count: _Optional[int] = ..., start_event: _Optional[int] = ..., max_events: _Optional[int] = ...) -> None: ...

class ProduceResponse(_message.Message):
    __slots__ = ("batch", "end_of_stream")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    batch: _data_pb2.EventBatch
    end_of_stream: _data_pb2.StreamTotals
    def __init__(self, batch: _Optional[_Union[_data_pb2.EventBatch, _Mapping]] = ..., end_of_stream: _Optional[_Union[_data_pb2.StreamTotals, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("pipelines",)
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedCompositeFieldContainer[Pipeline]
    def __init__(self, pipelines: _Optional[_Iterable[_Union[Pipeline, _Mapping]]] = ...) -> None: ...
