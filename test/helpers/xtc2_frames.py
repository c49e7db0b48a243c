#!/usr/bin/env python
"""Write a small synthetic LCLS-II XTC2 file with area-detector frames.

Uses psana.dgramCreate.CyDgram (the same helper psana's own
tests/test_py2xtc.py uses) to build, in order:

    Configure  -- Names blocks only (detector, scalar detector, runinfo)
    BeginRun   -- runinfo data (expt, runnum) -> run.expt / run.runnum
    L1Accept x N -- one ShapesData per detector segment + scalar detector
    EndRun

The area detector is written the way the DAQ writes a jungfrau: one
XTC segment per module, each with field "raw" (uint16, shape (rows, cols)),
dettype "jungfrau", algorithm "raw" version 0.2.0, so psana picks the
jungfrau_raw_0_2_0 interface and det.raw.raw(evt) stacks the segments to
(nseg, rows, cols).  The per-event scalars go into a BLD-like detector of
dettype "gmd" (alg raw 2.1.0 -> gmd_raw_2_1_0, which exposes every field as
det.raw.<field>(evt)).

Read back with:
    ds = DataSource(files=OUT, skip_calib_load="all")
    run = next(ds.runs())
    det = run.Detector("jungfrau"); gmd = run.Detector("gmd")
    for evt in run.events():
        det.raw.raw(evt)                      # (4, 512, 1024) uint16
        gmd.raw.milliJoulesPerPulse(evt)      # float
"""
import argparse
import os
import sys
import time

import numpy as np

import psana.dgramCreate as dc

# subset of xtcdata TransitionId enum
CONFIGURE, BEGINRUN, ENDRUN, L1ACCEPT = 2, 4, 5, 12

# CyDgram uses fixed 64 MiB malloc'ed buffers (per dgram and per detector
# data block) and does not bounds-check them.
MAX_DGRAM_BYTES = 0x4000000 - 4096

# det type -> (algorithm name, version) for which psana has a Detector class
AREA_ALGS = {
    "jungfrau": ("raw", [0, 2, 0]),
    "epix10ka": ("raw", [2, 0, 1]),
}
SCALAR_DETTYPE, SCALAR_ALG = "gmd", ("raw", [2, 1, 0])

# 2024-01-01T00:00:00Z in seconds since the EPICS/LCLS epoch 1990-01-01
T0_SEC = 1704067200 - 631152000
EVENT_PERIOD_NS = 1_000_000_000 // 120   # 120 Hz


def make_timestamp(i):
    """XTC timestamp: upper 32 bits seconds, lower 32 bits nanoseconds."""
    ns = i * EVENT_PERIOD_NS
    return ((T0_SEC + ns // 1_000_000_000) << 32) | (ns % 1_000_000_000)


def make_event(seed, ievt, shape, npeaks=8):
    """Deterministic (seed, ievt) -> (frames uint16 `shape`, scalars dict).

    Pedestal ~ N(3000, 30) per pixel with a per-module offset, plus a few
    Gaussian "Bragg peaks" of 2000-12000 ADU; clipped to 14 bits (gain bits
    0 = jungfrau gain stage g0).
    """
    nseg, rows, cols = shape
    rng = np.random.default_rng([seed, ievt])
    frames = rng.normal(3000.0, 30.0, size=shape).astype(np.float32)
    frames += (np.arange(nseg, dtype=np.float32) * 50.0)[:, None, None]
    half = 5                                   # peak stamp is 11x11 pixels
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    for _ in range(npeaks):
        s = rng.integers(nseg)
        r = rng.integers(half, rows - half)
        c = rng.integers(half, cols - half)
        amp = rng.uniform(2000.0, 12000.0)
        sigma = rng.uniform(0.8, 2.0)
        frames[s, r - half:r + half + 1, c - half:c + half + 1] += \
            amp * np.exp(-(yy ** 2 + xx ** 2) / (2 * sigma ** 2))
    frames = np.clip(np.rint(frames), 0, 0x3FFF).astype(np.uint16)
    scalars = {
        "milliJoulesPerPulse": np.float64(rng.normal(2.5, 0.2)),
        "photonEnergy": np.float64(rng.normal(9500.0, 5.0)),
        # digitizer-like arrays (a time-of-flight detector's peaks and waveforms)
        "peaks": rng.uniform(0, 1000, 8),
        "waveforms": rng.normal(0, 10, (2, 64)),
    }
    return frames, scalars


def write_file(path, nevents, shape, detname, dettype, seed,
               scalar_detnames, expt, runnum, npeaks):
    algname, algver = AREA_ALGS[dettype]
    nseg = shape[0]
    seg_bytes = int(np.prod(shape[1:])) * 2
    if nseg * seg_bytes + 4096 * (nseg + 2) > MAX_DGRAM_BYTES:
        sys.exit("event too large for dgramCreate's 64 MiB buffers")

    raw_alg = dc.alg(algname, algver)
    # one Names block per segment: namesId 0..nseg-1, segment k
    seg_info = [dc.nameinfo(detname, dettype, "sim%04d" % (1000 + k), k)
                for k in range(nseg)]
    sc_infos = [dc.nameinfo(n, SCALAR_DETTYPE, "bld", nseg + j) for j, n in enumerate(scalar_detnames)]
    sc_alg = dc.alg(*SCALAR_ALG)
    ri_info = dc.nameinfo("runinfo", "runinfo", "", nseg + len(scalar_detnames))
    ri_alg = dc.alg("runinfo", [0, 0, 1])
    runinfo = {"expt": expt, "runnum": runnum}

    cy = dc.CyDgram()
    blank = np.zeros(shape[1:], dtype=np.uint16)   # names only need dtype/rank
    _, sc0 = make_event(seed, 0, (1, 16, 16), 0)

    def add_all(frames, scalars):
        for k in range(nseg):
            cy.addDet(seg_info[k], raw_alg, {"raw": frames[k]}, segment=k)
        for sc_info in sc_infos:
            cy.addDet(sc_info, sc_alg, scalars)

    nbytes = 0
    with open(path, "wb") as f:
        # Configure: Names only (no 4 MB frame payload in the config dgram)
        add_all([blank] * nseg, sc0)
        cy.addDet(ri_info, ri_alg, runinfo)
        b = cy.getSelect(make_timestamp(0), CONFIGURE, add_names=True,
                         add_shapes_data=False)
        f.write(b)
        # BeginRun: runinfo data
        cy.addDet(ri_info, ri_alg, runinfo)
        f.write(cy.getSelect(make_timestamp(0), BEGINRUN, add_names=False,
                             add_shapes_data=True))
        for i in range(nevents):
            frames, scalars = make_event(seed, i, shape, npeaks)
            add_all(frames, scalars)
            b = cy.getSelect(make_timestamp(i + 1), L1ACCEPT, add_names=False,
                             add_shapes_data=True)
            f.write(b)
            nbytes += len(b)
        f.write(cy.getSelect(make_timestamp(nevents + 1), ENDRUN,
                             add_names=False, add_shapes_data=False))
    return nbytes


def verify(path, nevents, shape, detname, seed, scalar_detnames, npeaks):
    from psana import DataSource
    ds = DataSource(files=path, skip_calib_load="all")
    run = next(ds.runs())
    det = run.Detector(detname)
    sdets = [run.Detector(n) for n in scalar_detnames]
    n = 0
    for i, evt in enumerate(run.events()):
        frames, scalars = make_event(seed, i, shape, npeaks)
        got = det.raw.raw(evt)
        if shape[0] == 1:          # psana returns 2-D for a 1-segment detector
            frames = frames[0]
        assert got.dtype == np.uint16 and got.shape == frames.shape, (got.dtype, got.shape)
        assert np.array_equal(got, frames), "frame mismatch at event %d" % i
        for sdet in sdets:
            for k, v in scalars.items():
                assert np.array_equal(getattr(sdet.raw, k)(evt), v), (i, k)
        assert evt.timestamp == make_timestamp(i + 1)
        n += 1
    assert n == nevents, (n, nevents)
    print("verify OK: %d events, expt=%r runnum=%r run.timestamp=%r"
          % (n, run.expt, run.runnum, run.timestamp))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="output .xtc2 file")
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--shape", default="4,512,1024",
                   help="nseg,rows,cols (one XTC segment per module)")
    p.add_argument("--detector", default="jungfrau", help="detector name")
    p.add_argument("--dettype", default="jungfrau", choices=sorted(AREA_ALGS))
    p.add_argument("--scalar-detector", action="append",
                   help="a per-event scalar-and-waveform detector (repeat for more; default gmd)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peaks", type=int, default=8, help="peaks per event")
    p.add_argument("--expt", default="xpptut15")
    p.add_argument("--run", type=int, default=1)
    p.add_argument("--verify", action="store_true",
                   help="read the file back with psana and compare")
    a = p.parse_args()
    shape = tuple(int(x) for x in a.shape.split(","))
    if len(shape) == 2:            # single segment; raw.raw returns 2-D
        shape = (1,) + shape
    if len(shape) != 3:
        p.error("--shape must be rows,cols or nseg,rows,cols")

    # psana's DataSource(files=...) parses a chunk id from the text between
    # "-c" and ".xtc2" in the file name (xpptut15-r0001-s000-c000.xtc2) and
    # crashes if that is not an integer, e.g. "my-cool.xtc2".
    base = os.path.basename(a.out)
    st, en = base.find("-c"), base.find(".xtc2")
    if not base.endswith(".xtc2"):
        print("warning: psana expects a .xtc2 suffix", file=sys.stderr)
    elif st >= 0 and not base[st + 2:en].isdigit():
        p.error("psana would fail to parse chunk id from %r; avoid '-c' in the "
                "name or use the form expt-r0001-s000-c000.xtc2" % base)

    t = time.perf_counter()
    nbytes = write_file(a.out, a.events, shape, a.detector, a.dettype, a.seed,
                        a.scalar_detector or ["gmd"], a.expt, a.run, a.peaks)
    dt = time.perf_counter() - t
    print("wrote %s: %d events, shape %s uint16, %.1f MB of L1Accepts in %.2fs"
          % (a.out, a.events, shape, nbytes / 1e6, dt))
    if a.verify:
        verify(a.out, a.events, shape, a.detector, a.seed, a.scalar_detector or ["gmd"],
               a.peaks)


if __name__ == "__main__":
    main()
