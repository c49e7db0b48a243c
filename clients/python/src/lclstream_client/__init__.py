"""lclstream_client: ask an lclstream facility for detector data and iterate it in Python.

    from lclstream_client import Client
    with Client.from_cert_dir("https://facility:8443", "~/.lclstream/certs/user") as client:
        for batch in client.stream("crystallography.yaml"):
            print(batch.seq, {k: a.shape for k, a in batch.arrays.items()})
"""
from .client import Batch, BatchStream, Client, Journal, LclstreamError, default_group
from .dataset import EventDataset
from .enroll import enroll

__all__ = ["Batch", "BatchStream", "Client", "EventDataset", "Journal", "LclstreamError", "default_group", "enroll"]
