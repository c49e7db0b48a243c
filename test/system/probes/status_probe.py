"""How grpc-python (the C core) sees data-path calls: reads cases as JSON on stdin
(target, cert_dir, method Subscribe or Ack, request as proto JSON), makes each call
over mTLS and prints one JSON line per case: the status code's name, the ErrorInfo
reason and the message."""
import json
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lclstream.buffer.v1 import buffer_pb2, buffer_pb2_grpc


def call(case: dict) -> dict:
    d = Path(case["cert_dir"])
    creds = grpc.ssl_channel_credentials((d / "ca.crt").read_bytes(), (d / "tls.key").read_bytes(), (d / "tls.crt").read_bytes())
    with grpc.secure_channel(case["target"], creds) as channel:
        stub = buffer_pb2_grpc.BufferServiceStub(channel)
        try:
            if case["method"] == "Subscribe":
                for _ in stub.Subscribe(json_format.ParseDict(case["request"], buffer_pb2.SubscribeRequest()), timeout=10):
                    pass
            else:
                stub.Ack(json_format.ParseDict(case["request"], buffer_pb2.AckRequest()), timeout=10)
            return {"code": "OK"}
        except grpc.RpcError as error:
            reason = None
            status = rpc_status.from_call(error)
            for detail in status.details if status else []:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
            return {"code": error.code().name, "reason": reason, "message": error.details()}


for case in json.load(sys.stdin):
    print(json.dumps(call(case)), flush=True)
