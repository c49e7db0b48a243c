"""Train a small CNN to tell crystallography hits from misses, on frames streamed from a data request.

    python examples/train_hits.py https://HOST:PORT CERT_DIR [--epochs 5]

(`lclstream up` prints the request service's URL and the cert dir.) Each epoch asks for fresh synthetic
frames: 256x256 detector frames with 0 to 7 Bragg peaks, binned 4x4 at the source to 64x64 so that a
CPU trains on them. A frame with 4 or more peaks is a hit, so half of them are and chance is 0.5. The
labels come from the frames' injected peaks (`frame_peaks_truth`). Two DataLoader workers share each
epoch's stream; the test set is one more request, read once.
"""
import argparse
import time

import torch
from torch import nn

from lclstream_client import Client
from lclstream_client.torch import StreamDataset, StreamLoader

HIT_PEAKS = 4


def frames(events: int, seed: int) -> dict:
    """A data request for `events` binned synthetic frames (an lclstreamer config, with lclstream's synthetic detector)."""
    return {
        "experiment": "default",
        "parallelism": 1,
        "producer": {
            "source_identifier": f"synthetic:hits:run={seed}",
            "skip_incomplete_events": False,
            "event_source": {"type": "InternalEventSource", "number_of_events_to_generate": events, "seed": seed},
            "data_sources": {"frame": {"type": "SyntheticAreaDetector", "geometry": "small", "peaks": {"min": 0, "max": 7}, "truth": True}},
            "processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 32, "steps": [{"type": "Binning", "data_source": "frame", "factor": 4}]},
            "data_serializer": {"type": "NativeBinarySerializer"},
            "data_handlers": [],
        },
    }


def inputs_and_labels(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    frame = batch["frame"].float()
    background = frame.flatten(1).median(1).values[:, None, None]
    x = torch.log1p(torch.relu(frame - background) / 100).unsqueeze(1)
    peaks = (~torch.isnan(batch["frame_peaks_truth"][:, :, 0])).sum(1)
    return x, (peaks >= HIT_PEAKS).float()


def model() -> nn.Module:
    # Peaks are small bright spots: convolutions find them, the average over the frame counts them.
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("cert_dir")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--events", type=int, default=1024, help="frames per epoch")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    net, loss_of = model(), nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    with Client.from_cert_dir(args.url, args.cert_dir) as client:
        with StreamDataset.from_config(client, frames(256, seed=1000), fields=["frame", "frame_peaks_truth"]) as test:
            test_set = [inputs_and_labels(batch) for batch in StreamLoader(test, batch_size=64)]
        for epoch in range(1, args.epochs + 1):
            started, total, right, seen = time.monotonic(), 0.0, 0, 0
            with StreamDataset.from_config(client, frames(args.events, seed=epoch), fields=["frame", "frame_peaks_truth"]) as train:
                net.train()
                for batch in StreamLoader(train, batch_size=32, num_workers=args.workers):
                    x, y = inputs_and_labels(batch)
                    logits = net(x).squeeze(1)
                    loss = loss_of(logits, y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(y)
                    right += int(((logits > 0).float() == y).sum())
                    seen += len(y)
            net.eval()
            with torch.no_grad():
                test_right = sum(int(((net(x).squeeze(1) > 0).float() == y).sum()) for x, y in test_set)
                test_count = sum(len(y) for _, y in test_set)
            print(
                f"epoch {epoch}: loss {total / seen:.3f}, train accuracy {right / seen:.3f}, "
                f"test accuracy {test_right / test_count:.3f} ({seen} frames streamed in {time.monotonic() - started:.1f} s; chance is 0.5)",
                flush=True,
            )


if __name__ == "__main__":
    main()
