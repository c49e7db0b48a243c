import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_TYPE_UNSPECIFIED: _ClassVar[KeyType]
    KEY_TYPE_ECDSA_P256: _ClassVar[KeyType]
    KEY_TYPE_ED25519: _ClassVar[KeyType]

class RevocationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_REASON_UNSPECIFIED: _ClassVar[RevocationReason]
    REVOCATION_REASON_KEY_COMPROMISE: _ClassVar[RevocationReason]
    REVOCATION_REASON_AFFILIATION_CHANGED: _ClassVar[RevocationReason]
    REVOCATION_REASON_SUPERSEDED: _ClassVar[RevocationReason]
    REVOCATION_REASON_CESSATION_OF_OPERATION: _ClassVar[RevocationReason]
    REVOCATION_REASON_PRIVILEGE_WITHDRAWN: _ClassVar[RevocationReason]
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_ECDSA_P256: KeyType
KEY_TYPE_ED25519: KeyType
REVOCATION_REASON_UNSPECIFIED: RevocationReason
REVOCATION_REASON_KEY_COMPROMISE: RevocationReason
REVOCATION_REASON_AFFILIATION_CHANGED: RevocationReason
REVOCATION_REASON_SUPERSEDED: RevocationReason
REVOCATION_REASON_CESSATION_OF_OPERATION: RevocationReason
REVOCATION_REASON_PRIVILEGE_WITHDRAWN: RevocationReason

class Certificate(_message.Message):
    __slots__ = ("name", "serial_number", "identity", "dns_names", "ip_addresses", "key_type", "not_before_time", "not_after_time", "issuance", "requester", "state", "revocation", "certificate_pem", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Certificate.State]
        STATE_ACTIVE: _ClassVar[Certificate.State]
        STATE_EXPIRED: _ClassVar[Certificate.State]
        STATE_REVOKED: _ClassVar[Certificate.State]
    STATE_UNSPECIFIED: Certificate.State
    STATE_ACTIVE: Certificate.State
    STATE_EXPIRED: Certificate.State
    STATE_REVOKED: Certificate.State
    class Issuance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ISSUANCE_UNSPECIFIED: _ClassVar[Certificate.Issuance]
        ISSUANCE_ENROLL: _ClassVar[Certificate.Issuance]
        ISSUANCE_RENEW: _ClassVar[Certificate.Issuance]
        ISSUANCE_OFFLINE: _ClassVar[Certificate.Issuance]
    ISSUANCE_UNSPECIFIED: Certificate.Issuance
    ISSUANCE_ENROLL: Certificate.Issuance
    ISSUANCE_RENEW: Certificate.Issuance
    ISSUANCE_OFFLINE: Certificate.Issuance
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_TIME_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    serial_number: str
    identity: str
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    key_type: KeyType
    not_before_time: _timestamp_pb2.Timestamp
    not_after_time: _timestamp_pb2.Timestamp
    issuance: Certificate.Issuance
    requester: str
    state: Certificate.State
    revocation: Revocation
    certificate_pem: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., serial_number: _Optional[str] = ..., identity: _Optional[str] = ..., dns_names: _Optional[_Iterable[str]] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., not_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., issuance: _Optional[_Union[Certificate.Issuance, str]] = ..., requester: _Optional[str] = ..., state: _Optional[_Union[Certificate.State, str]] = ..., revocation: _Optional[_Union[Revocation, _Mapping]] = ..., certificate_pem: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnrollmentToken(_message.Message):
    __slots__ = ("name", "identity", "dns_names", "ip_addresses", "creator", "create_time", "expire_time", "state", "certificate")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[EnrollmentToken.State]
        STATE_UNUSED: _ClassVar[EnrollmentToken.State]
        STATE_USED: _ClassVar[EnrollmentToken.State]
        STATE_EXPIRED: _ClassVar[EnrollmentToken.State]
    STATE_UNSPECIFIED: EnrollmentToken.State
    STATE_UNUSED: EnrollmentToken.State
    STATE_USED: EnrollmentToken.State
    STATE_EXPIRED: EnrollmentToken.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    identity: str
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    creator: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    state: EnrollmentToken.State
    certificate: str
    def __init__(self, name: _Optional[str] = ..., identity: _Optional[str] = ..., dns_names: _Optional[_Iterable[str]] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., creator: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[EnrollmentToken.State, str]] = ..., certificate: _Optional[str] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("sequence", "serial_number", "identity", "reason", "revoker", "revoke_time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKER_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    serial_number: str
    identity: str
    reason: RevocationReason
    revoker: str
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., serial_number: _Optional[str] = ..., identity: _Optional[str] = ..., reason: _Optional[_Union[RevocationReason, str]] = ..., revoker: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTrustBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTrustBundleResponse(_message.Message):
    __slots__ = ("trust_domain", "ca_certificates_pem")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_PEM_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    ca_certificates_pem: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trust_domain: _Optional[str] = ..., ca_certificates_pem: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateEnrollmentTokenRequest(_message.Message):
    __slots__ = ("identity", "ttl", "dns_names", "ip_addresses")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    identity: str
    ttl: _duration_pb2.Duration
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, identity: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., dns_names: _Optional[_Iterable[str]] = ..., ip_addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateEnrollmentTokenResponse(_message.Message):
    __slots__ = ("token", "secret")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    token: EnrollmentToken
    secret: str
    def __init__(self, token: _Optional[_Union[EnrollmentToken, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("token", "csr_pem")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr_pem: str
    def __init__(self, token: _Optional[str] = ..., csr_pem: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("certificate", "certificate_chain_pem", "ca_certificates_pem")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    certificate_chain_pem: str
    ca_certificates_pem: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., certificate_chain_pem: _Optional[str] = ..., ca_certificates_pem: _Optional[_Iterable[str]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: str
    def __init__(self, csr_pem: _Optional[str] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate", "certificate_chain_pem", "ca_certificates_pem")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    certificate_chain_pem: str
    ca_certificates_pem: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., certificate_chain_pem: _Optional[str] = ..., ca_certificates_pem: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("serial_number", "reason")
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    serial_number: str
    reason: RevocationReason
    def __init__(self, serial_number: _Optional[str] = ..., reason: _Optional[_Union[RevocationReason, str]] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class ListCertificatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "identity", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    identity: str
    state: Certificate.State
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., identity: _Optional[str] = ..., state: _Optional[_Union[Certificate.State, str]] = ...) -> None: ...

class ListCertificatesResponse(_message.Message):
    __slots__ = ("certificates", "next_page_token")
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedCompositeFieldContainer[Certificate]
    next_page_token: str
    def __init__(self, certificates: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRevocationListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRevocationListResponse(_message.Message):
    __slots__ = ("crl_der", "crl_pem", "crl_number", "this_update_time", "next_update_time")
    CRL_DER_FIELD_NUMBER: _ClassVar[int]
    CRL_PEM_FIELD_NUMBER: _ClassVar[int]
    CRL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    THIS_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    crl_der: bytes
    crl_pem: str
    crl_number: int
    this_update_time: _timestamp_pb2.Timestamp
    next_update_time: _timestamp_pb2.Timestamp
    def __init__(self, crl_der: _Optional[bytes] = ..., crl_pem: _Optional[str] = ..., crl_number: _Optional[int] = ..., this_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchRevocationsRequest(_message.Message):
    __slots__ = ("after_sequence",)
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    def __init__(self, after_sequence: _Optional[int] = ...) -> None: ...

class WatchRevocationsResponse(_message.Message):
    __slots__ = ("revocation",)
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    revocation: Revocation
    def __init__(self, revocation: _Optional[_Union[Revocation, _Mapping]] = ...) -> None: ...
