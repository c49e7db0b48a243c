"""The mesh under test: started by the harness (test/system/python-client.test.ts), described by its endpoints.json."""
import json
import os
from pathlib import Path

import pytest

from lclstream_client import Client


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: these tests run against a real mesh; run them with `npm run test:system` (test/system/python-client.test.ts and torch.test.ts start it)", returncode=2)
    return value


@pytest.fixture(scope="session")
def endpoints() -> dict:
    return json.loads(Path(_need("LCLSTREAM_ENDPOINTS")).read_text())


@pytest.fixture()
def client(endpoints):
    with Client.from_cert_dir(endpoints["request"], endpoints["certDir"]) as c:
        yield c


def tof_request(events: int = 96, batch_size: int = 8, **extra) -> dict:
    """A small time-of-flight request on the synthetic source (columnar arrays)."""
    return {
        "experiment": "default",
        "parallelism": 1,
        # An lclstreamer config: lclstreamer's layout, with lclstream's synthetic digitizer.
        "producer": {
            "source_identifier": "synthetic:tof:run=7",
            "skip_incomplete_events": False,
            "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events, "seed": 7},
            "data_sources": {
                "tof": {"type": "SyntheticDigitizer", "channels": 2, "samples": 256, "hits": {"min": 1, "max": 4}},
                "timestamp": {"type": "SyntheticTimestamp"},
            },
            "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": batch_size},
            "data_serializer": {"type": "NativeBinarySerializer"},
            "data_handlers": [],
        },
        **extra,
    }
