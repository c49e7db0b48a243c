"""The transport lclstream replaces, as a baseline: lclstreamer's ZeroMQ PUSH/PULL on plain TCP,
with lclstreamer's own calls: its streaming handler sends with `socket.send(data)`
(src/lclstreamer/data_handlers/streaming/binary.py) and its example consumers read with
`socket.recv()` (examples/pull_script_hdf5_zmq.py), pyzmq's defaults: large messages leave
without a copy and arrive as a bytes object of their own.

    python3 bench/seed_transport.py ROLE JSON

Roles, each printing JSON lines on stdout as bench/roles.ts's do:
    sink    PULL bound on loopback, counting bytes -> {port}, then {bytes, seconds, cpuMs} after its window
    relay   PULL bound, every message sent on by a PUSH to `to` (a Python loop with the same calls:
            a forwarding process written with pyzmq) -> {port}
    source  PUSH to `port`, writing `chunkBytes` messages until stopped
"""
import json
import os
import signal
import sys
import time

import zmq

role, args = sys.argv[1], json.loads(sys.argv[2])
context = zmq.Context()
# Stopped, it leaves at once: a source blocked sending to a sink that is gone would otherwise wait
# forever in the context's teardown, for messages that cannot leave (pyzmq's default linger).
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))


def bound(kind):
    sock = context.socket(kind)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(json.dumps({"port": port}), flush=True)
    return sock


def cpu_ms():
    return time.process_time() * 1000


if role == "sink":
    pull = bound(zmq.PULL)
    warmup, window = args.get("warmupMs", 500) / 1000, args.get("measureMs", 3000) / 1000
    pull.recv()
    started = time.perf_counter() + warmup
    while time.perf_counter() < started:
        pull.recv()
    nbytes, cpu, t0 = 0, cpu_ms(), time.perf_counter()
    while time.perf_counter() - t0 < window:
        nbytes += len(pull.recv())
    print(json.dumps({"bytes": nbytes, "seconds": time.perf_counter() - t0, "cpuMs": cpu_ms() - cpu}), flush=True)
elif role == "relay":
    pull = bound(zmq.PULL)
    push = context.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{args['to']}")
    while True:
        push.send(pull.recv())
elif role == "source":
    push = context.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{args['port']}")
    chunk = bytes(args.get("chunkBytes", 1 << 20))
    while True:
        push.send(chunk)
else:
    sys.exit(f"unknown role {role}; one of sink, relay, source")
