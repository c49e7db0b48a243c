import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]
LOG_STREAM_UNSPECIFIED: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream

class Backend(_message.Message):
    __slots__ = ("name", "type", "available", "status_message", "queue_name", "project_name", "reservation_id")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Backend.Type]
        TYPE_LOCAL: _ClassVar[Backend.Type]
        TYPE_SLURM: _ClassVar[Backend.Type]
    TYPE_UNSPECIFIED: Backend.Type
    TYPE_LOCAL: Backend.Type
    TYPE_SLURM: Backend.Type
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: Backend.Type
    available: bool
    status_message: str
    queue_name: str
    project_name: str
    reservation_id: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[Backend.Type, str]] = ..., available: bool = ..., status_message: _Optional[str] = ..., queue_name: _Optional[str] = ..., project_name: _Optional[str] = ..., reservation_id: _Optional[str] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "directory", "script", "environment", "inherit_environment", "resources", "backend", "attributes", "max_restarts", "callback", "cb_headers", "cb_secret")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class CbHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    INHERIT_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    CB_HEADERS_FIELD_NUMBER: _ClassVar[int]
    CB_SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    directory: str
    script: str
    environment: _containers.ScalarMap[str, str]
    inherit_environment: bool
    resources: ResourceSpec
    backend: str
    attributes: _containers.ScalarMap[str, str]
    max_restarts: int
    callback: str
    cb_headers: _containers.ScalarMap[str, str]
    cb_secret: str
    def __init__(self, name: _Optional[str] = ..., directory: _Optional[str] = ..., script: _Optional[str] = ..., environment: _Optional[_Mapping[str, str]] = ..., inherit_environment: bool = ..., resources: _Optional[_Union[ResourceSpec, _Mapping]] = ..., backend: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., max_restarts: _Optional[int] = ..., callback: _Optional[str] = ..., cb_headers: _Optional[_Mapping[str, str]] = ..., cb_secret: _Optional[str] = ...) -> None: ...

class ResourceSpec(_message.Message):
    __slots__ = ("duration_minutes", "node_count", "process_count", "processes_per_node", "cpu_cores_per_process", "gpu_cores_per_process", "exclusive_node_use")
    DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    NODE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_PER_PROCESS_FIELD_NUMBER: _ClassVar[int]
    GPU_CORES_PER_PROCESS_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_NODE_USE_FIELD_NUMBER: _ClassVar[int]
    duration_minutes: int
    node_count: int
    process_count: int
    processes_per_node: int
    cpu_cores_per_process: int
    gpu_cores_per_process: int
    exclusive_node_use: bool
    def __init__(self, duration_minutes: _Optional[int] = ..., node_count: _Optional[int] = ..., process_count: _Optional[int] = ..., processes_per_node: _Optional[int] = ..., cpu_cores_per_process: _Optional[int] = ..., gpu_cores_per_process: _Optional[int] = ..., exclusive_node_use: bool = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "spec", "owner", "state", "jobndx", "backend_job_id", "exit_code", "transitions", "create_time", "update_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Job.State]
        STATE_NEW: _ClassVar[Job.State]
        STATE_QUEUED: _ClassVar[Job.State]
        STATE_ACTIVE: _ClassVar[Job.State]
        STATE_COMPLETED: _ClassVar[Job.State]
        STATE_FAILED: _ClassVar[Job.State]
        STATE_CANCELED: _ClassVar[Job.State]
    STATE_UNSPECIFIED: Job.State
    STATE_NEW: Job.State
    STATE_QUEUED: Job.State
    STATE_ACTIVE: Job.State
    STATE_COMPLETED: Job.State
    STATE_FAILED: Job.State
    STATE_CANCELED: Job.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOBNDX_FIELD_NUMBER: _ClassVar[int]
    BACKEND_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: JobSpec
    owner: str
    state: Job.State
    jobndx: int
    backend_job_id: str
    exit_code: int
    transitions: _containers.RepeatedCompositeFieldContainer[Transition]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., owner: _Optional[str] = ..., state: _Optional[_Union[Job.State, str]] = ..., jobndx: _Optional[int] = ..., backend_job_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., transitions: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("time", "jobndx", "state", "info")
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOBNDX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    jobndx: int
    state: Job.State
    info: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jobndx: _Optional[int] = ..., state: _Optional[_Union[Job.State, str]] = ..., info: _Optional[str] = ...) -> None: ...

class ListBackendsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackendsResponse(_message.Message):
    __slots__ = ("backends",)
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    backends: _containers.RepeatedCompositeFieldContainer[Backend]
    def __init__(self, backends: _Optional[_Iterable[_Union[Backend, _Mapping]]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "request_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    request_id: str
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "backend", "owner")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: Job.State
    backend: str
    owner: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[Job.State, str]] = ..., backend: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StartJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("transition",)
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    transition: Transition
    def __init__(self, transition: _Optional[_Union[Transition, _Mapping]] = ...) -> None: ...

class StreamJobLogsRequest(_message.Message):
    __slots__ = ("name", "jobndx", "log", "follow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOBNDX_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    jobndx: int
    log: LogStream
    follow: bool
    def __init__(self, name: _Optional[str] = ..., jobndx: _Optional[int] = ..., log: _Optional[_Union[LogStream, str]] = ..., follow: bool = ...) -> None: ...

class StreamJobLogsResponse(_message.Message):
    __slots__ = ("log", "jobndx", "offset_bytes", "data")
    LOG_FIELD_NUMBER: _ClassVar[int]
    JOBNDX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    log: LogStream
    jobndx: int
    offset_bytes: int
    data: bytes
    def __init__(self, log: _Optional[_Union[LogStream, str]] = ..., jobndx: _Optional[int] = ..., offset_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
