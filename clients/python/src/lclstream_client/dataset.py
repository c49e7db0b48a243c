"""One event at a time from a data request, without torch.

For PyTorch (DataLoader workers, DDP ranks, tensors), use ``lclstream_client.torch.StreamDataset``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from .client import Batch, Client


class EventDataset:
    """Yields one sample per event (a dict of field -> array) from the batches of a request.

    `transform` maps each sample (for example to tensors). Iterating again
    joins the same consumer group again: batches not yet acknowledged are
    redelivered, nothing is lost.
    """

    def __init__(self, client: Client, request: str, fields: list[str] | None = None, group: str | None = None, transform: Callable[[dict[str, np.ndarray]], Any] | None = None):
        self.client = client
        self.request = request
        self.fields = fields
        self.group = group
        self.transform = transform or (lambda sample: sample)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.client.batches(self.request, self.group):
            yield from self._samples(batch)

    def _samples(self, batch: Batch) -> Iterator[Any]:
        columns = batch.columns()
        names = self.fields or list(columns)
        for i in range(len(batch.event_indices)):
            sample = {name: columns[name][i] for name in names}
            sample["event_index"] = batch.event_indices[i]
            yield self.transform(sample)
