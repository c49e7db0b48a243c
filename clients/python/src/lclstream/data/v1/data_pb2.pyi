from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_BOOL: _ClassVar[DataType]
    DATA_TYPE_INT8: _ClassVar[DataType]
    DATA_TYPE_UINT8: _ClassVar[DataType]
    DATA_TYPE_INT16: _ClassVar[DataType]
    DATA_TYPE_UINT16: _ClassVar[DataType]
    DATA_TYPE_INT32: _ClassVar[DataType]
    DATA_TYPE_UINT32: _ClassVar[DataType]
    DATA_TYPE_INT64: _ClassVar[DataType]
    DATA_TYPE_UINT64: _ClassVar[DataType]
    DATA_TYPE_FLOAT16: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]
    DATA_TYPE_FLOAT64: _ClassVar[DataType]

class Compression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPRESSION_UNSPECIFIED: _ClassVar[Compression]
    COMPRESSION_GZIP: _ClassVar[Compression]
    COMPRESSION_ZSTD: _ClassVar[Compression]

class PayloadFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_FORMAT_UNSPECIFIED: _ClassVar[PayloadFormat]
    PAYLOAD_FORMAT_HDF5: _ClassVar[PayloadFormat]
    PAYLOAD_FORMAT_SIMPLON_CBOR: _ClassVar[PayloadFormat]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_BOOL: DataType
DATA_TYPE_INT8: DataType
DATA_TYPE_UINT8: DataType
DATA_TYPE_INT16: DataType
DATA_TYPE_UINT16: DataType
DATA_TYPE_INT32: DataType
DATA_TYPE_UINT32: DataType
DATA_TYPE_INT64: DataType
DATA_TYPE_UINT64: DataType
DATA_TYPE_FLOAT16: DataType
DATA_TYPE_FLOAT32: DataType
DATA_TYPE_FLOAT64: DataType
COMPRESSION_UNSPECIFIED: Compression
COMPRESSION_GZIP: Compression
COMPRESSION_ZSTD: Compression
PAYLOAD_FORMAT_UNSPECIFIED: PayloadFormat
PAYLOAD_FORMAT_HDF5: PayloadFormat
PAYLOAD_FORMAT_SIMPLON_CBOR: PayloadFormat

class EventBatch(_message.Message):
    __slots__ = ("stream", "producer_rank", "seq", "event_indices", "event_time_unix_ns", "columns", "serialized")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_RANK_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_INDICES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SERIALIZED_FIELD_NUMBER: _ClassVar[int]
    stream: str
    producer_rank: int
    seq: int
    event_indices: _containers.RepeatedScalarFieldContainer[int]
    event_time_unix_ns: _containers.RepeatedScalarFieldContainer[int]
    columns: Columns
    serialized: SerializedPayload
    def __init__(self, stream: _Optional[str] = ..., producer_rank: _Optional[int] = ..., seq: _Optional[int] = ..., event_indices: _Optional[_Iterable[int]] = ..., event_time_unix_ns: _Optional[_Iterable[int]] = ..., columns: _Optional[_Union[Columns, _Mapping]] = ..., serialized: _Optional[_Union[SerializedPayload, _Mapping]] = ...) -> None: ...

class Columns(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Array
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Array, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, Array]
    def __init__(self, fields: _Optional[_Mapping[str, Array]] = ...) -> None: ...

class SerializedPayload(_message.Message):
    __slots__ = ("format", "data")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    format: PayloadFormat
    data: bytes
    def __init__(self, format: _Optional[_Union[PayloadFormat, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Array(_message.Message):
    __slots__ = ("dtype", "shape", "data", "compression")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    dtype: DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    compression: Compression
    def __init__(self, dtype: _Optional[_Union[DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., compression: _Optional[_Union[Compression, str]] = ...) -> None: ...

class StreamTotals(_message.Message):
    __slots__ = ("batch_count", "event_count", "payload_bytes", "producer_totals")
    BATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_TOTALS_FIELD_NUMBER: _ClassVar[int]
    batch_count: int
    event_count: int
    payload_bytes: int
    producer_totals: _containers.RepeatedCompositeFieldContainer[ProducerTotals]
    def __init__(self, batch_count: _Optional[int] = ..., event_count: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., producer_totals: _Optional[_Iterable[_Union[ProducerTotals, _Mapping]]] = ...) -> None: ...

class ProducerTotals(_message.Message):
    __slots__ = ("producer_rank", "batch_count", "event_count", "skipped_event_count")
    PRODUCER_RANK_FIELD_NUMBER: _ClassVar[int]
    BATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    producer_rank: int
    batch_count: int
    event_count: int
    skipped_event_count: int
    def __init__(self, producer_rank: _Optional[int] = ..., batch_count: _Optional[int] = ..., event_count: _Optional[int] = ..., skipped_event_count: _Optional[int] = ...) -> None: ...
