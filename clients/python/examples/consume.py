"""Stream a data request and print what arrives; run it again with the same --journal to resume.

    python examples/consume.py https://HOST:8443 ~/.lclstream/certs/user ../../examples/time-of-flight.yaml --journal run1
"""
import argparse

from lclstream_client import Client

parser = argparse.ArgumentParser()
parser.add_argument("url", help="the data request service (the front door)")
parser.add_argument("cert_dir", help="ca.crt, tls.crt, tls.key from `lclstream enroll`")
parser.add_argument("request", help="a request YAML (or an existing request's name with --resume)")
parser.add_argument("--journal", help="a directory to keep what arrived in, for resuming")
parser.add_argument("--resume", action="store_true", help="join the running request named by `request` again")
args = parser.parse_args()

with Client.from_cert_dir(args.url, args.cert_dir) as client:
    stream = client.batches(args.request, journal_dir=args.journal) if args.resume else client.stream(args.request, journal_dir=args.journal)
    for batch in stream:
        shapes = {name: a.shape for name, a in batch.arrays.items()} if batch.arrays else f"{len(batch.serialized)} bytes of HDF5"
        print(f"batch {batch.seq}: {len(batch.event_indices)} events, {shapes}")
    print(f"done: {stream.totals.batch_count} batches, {stream.totals.event_count} events, all received")
