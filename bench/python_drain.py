"""A Python consumer draining batches a buffer stream already holds (`npm run bench`, scenario python).

    python bench/python_drain.py MODE JSON

MODE is how it reads:
  grpcio  a bare grpcio reader: Subscribe, parse each message, acknowledge every 16 seqs (the floor)
  client  lclstream_client's BatchStream: arrays decoded, each batch acknowledged once the next is taken
  torch   lclstream_client.torch: a StreamLoader with 2 fork-started DataLoader workers sharing the group,
          whole batches as tensors, acknowledged from the loop
  torch-alone  a DataLoader (2 fork-started workers, 1 MiB tensors over bytes, as a message's are) with
          no network at all: what torch's own worker-to-loop handing costs here
  ring-alone   the same, handed as StreamLoader hands them (each worker's ring of shared memory)

JSON has url, stream, group, count, warmupCount and the PEMs (caPem, certPem, keyPem). It times batches
warmupCount + 1 to count, and prints {"bytes", "seconds", "cpuMs"} (cpuMs: this process's, so not the
DataLoader workers'; in torch mode allCpuMsPerMiB counts the loop's and its workers').
The bench's stream has no data request, so the client is told where it is instead of asking the
request service: the path measured is the client's own, from Subscribe to the acknowledgement.
"""
import json
import os
import sys
import time
from functools import partial

import grpc

from lclstream.buffer.v1 import buffer_pb2, buffer_pb2_grpc
from lclstream.request.v1 import request_pb2


def with_children_cpu() -> float:
    """This process's CPU seconds and its live children's (a DataLoader's workers), from /proc."""
    total = time.process_time()
    for task in os.listdir("/proc/self/task"):
        try:  # a thread or a child may end meanwhile
            with open(f"/proc/self/task/{task}/children") as children:
                for pid in children.read().split():
                    with open(f"/proc/{pid}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            continue
    return total


class Meter:
    def __init__(self, count: int, warmup: int):
        self.count, self.warmup, self.received, self.bytes = count, warmup, 0, 0
        self.all_cpu = None  # set to with_children_cpu where the work is in child processes

    def add(self, nbytes: int) -> bool:
        """Counts a batch; True when `count` have arrived (the figures are taken then)."""
        self.received += 1
        if self.received == self.warmup:
            self.started, self.cpu = time.perf_counter(), time.process_time()
            self.all_cpu_at = self.all_cpu and self.all_cpu()
        elif self.received > self.warmup:
            self.bytes += nbytes
        if self.received < self.count:
            return False
        self.result = {"bytes": self.bytes, "seconds": time.perf_counter() - self.started, "cpuMs": (time.process_time() - self.cpu) * 1000}
        if self.all_cpu:
            self.result["allCpuMsPerMiB"] = (self.all_cpu() - self.all_cpu_at) * 1000 / (self.bytes / 2**20)
        return True


def bare_grpcio(args: dict, meter: Meter) -> None:
    credentials = grpc.ssl_channel_credentials(args["caPem"].encode(), args["keyPem"].encode(), args["certPem"].encode())
    options = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.secure_channel(args["url"].removeprefix("https://"), credentials, options) as channel:
        stub = buffer_pb2_grpc.BufferServiceStub(channel)
        request = buffer_pb2.SubscribeRequest(stream=args["stream"], consumer_group=args["group"], max_in_flight=32)
        consumer, pending, calls = "", [], []
        for response in stub.Subscribe(request):
            kind = response.WhichOneof("kind")
            if kind == "started":
                consumer = response.started.consumer_id
            elif kind == "batch":
                pending.append(response.seq)
                if len(pending) == 16:
                    # Kept until answered: grpcio cancels a call whose future is garbage collected.
                    ack = stub.Ack.future(buffer_pb2.AckRequest(stream=args["stream"], consumer_group=args["group"], consumer_id=consumer, seqs=pending))
                    calls = [c for c in calls if not c.done()] + [ack]
                    pending = []
                if meter.add(len(response.batch.columns.fields["frame"].data)):
                    return


def pointed_at_the_stream(args: dict):
    """A Client that finds the bench's stream where it is (no request service)."""
    from lclstream_client import Client

    # The bench's stream has one group, g0, of 32 batches in flight.
    group = buffer_pb2.ConsumerGroup(name=args["group"], max_in_flight=32)
    here = request_pb2.DataRequest(name="dataRequests/bench", stream=args["stream"], buffer_endpoint=args["url"], consumer_groups=[group])
    Client.wait_for_stream = lambda self, name, timeout=120: here  # inherited by forked workers
    return Client(args["url"], ca_pem=args["caPem"].encode(), cert_pem=args["certPem"].encode(), key_pem=args["keyPem"].encode())


def client(args: dict, meter: Meter) -> None:
    with pointed_at_the_stream(args) as c:
        for batch in c.batches("bench", args["group"]):
            if meter.add(batch.arrays["frame"].nbytes):
                return


def torch_loader(args: dict, meter: Meter) -> None:
    from lclstream_client.torch import StreamDataset, StreamLoader

    dataset = StreamDataset(pointed_at_the_stream(args), "bench", group=args["group"], per_event=False)
    meter.all_cpu = with_children_cpu
    for batch in StreamLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork"):
        if meter.add(batch["frame"].nbytes):
            return


def torch_alone(args: dict, meter: Meter, ring: bool) -> None:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    from lclstream_client.torch import _as_is, _LoopRings, _tagged, _unpacked

    # 64 distinct buffers, more than the caches hold, handed out in turn: memory as cold as a new
    # message's, without a copy the real path does not make (writable, as the client's arrays are).
    chunks = [bytearray([i]) * args["chunkBytes"] for i in range(64)]

    class Frames(IterableDataset):
        def __iter__(self):
            workers = get_worker_info().num_workers
            for i in range(args["count"] // workers + 1):
                yield {"frame": torch.from_numpy(np.frombuffer(chunks[i % len(chunks)], dtype=np.float32))}

    meter.all_cpu = with_children_cpu  # every process's CPU per MiB handed over, workers and loop alike
    if ring:  # StreamLoader's own collate and unpacking, without its stream
        rings = _LoopRings()
        loader = DataLoader(Frames(), batch_size=None, num_workers=2, multiprocessing_context="fork", collate_fn=partial(_tagged, _as_is, True, 64 << 20))
        batches = (_unpacked(sent, rings) for sent, _tags in loader)
    else:
        batches = iter(DataLoader(Frames(), batch_size=None, num_workers=2, multiprocessing_context="fork"))
    for batch in batches:
        if meter.add(batch["frame"].nbytes):
            return


if __name__ == "__main__":
    mode, settings = sys.argv[1], json.loads(sys.argv[2])
    meter = Meter(settings["count"], settings["warmupCount"])
    readers = {"grpcio": bare_grpcio, "client": client, "torch": torch_loader}
    readers.update({"torch-alone": partial(torch_alone, ring=False), "ring-alone": partial(torch_alone, ring=True)})
    readers[mode](settings, meter)
    print(json.dumps(meter.result), flush=True)
    os._exit(0)  # the stream is not drained to its end: leave without waiting on the calls still open
