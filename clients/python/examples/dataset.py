"""Feed a training loop one event at a time (PyTorch-style iterable dataset; torch is optional).

    python examples/dataset.py https://HOST:8443 ~/.lclstream/certs/user ../../examples/ml-training.yaml
"""
import sys

from lclstream_client import Client, EventDataset

url, cert_dir, config = sys.argv[1:4]
with Client.from_cert_dir(url, cert_dir) as client:
    request = client.create_request(config)
    dataset = EventDataset(client, request.name)
    try:
        import torch.utils.data

        class Events(torch.utils.data.IterableDataset):
            def __iter__(self):
                return iter(dataset)

        loader = torch.utils.data.DataLoader(Events(), batch_size=32)
    except ImportError:
        loader = dataset  # without torch: one sample (a dict of arrays) at a time
    for i, sample in enumerate(loader):
        if i % 100 == 0:
            print(i, {k: getattr(v, "shape", v) for k, v in sample.items()})
