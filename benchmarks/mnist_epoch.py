"""Wall time of one MNIST training epoch: tinymtl vs PyTorch CPU, same CNN, same data.

    tinymtl data fetch mnist          # once
    python benchmarks/mnist_epoch.py  # add --json for one JSON object

The model is examples/mnist.yaml's: [Conv3x3 -> ReLU -> MaxPool2] x (32, 64) -> Flatten ->
Dropout(0.25) -> Linear(1600, 128) -> ReLU -> Linear(128, 10); AdamW (lr 2e-3, weight decay
1e-4), batch 64, float32, all threads. Each framework trains one full epoch over the 50,000
training images in the same shuffled order. They take turns, side by side in one process:
block after block of ``--block`` steps (which of the two goes first alternates), so that the
machine's slow drifts (a shared host's clock, another process) hit both alike. We report each
one's seconds for the whole epoch, the ratio as the median over blocks of ours/theirs (what
the targets use, as ``step_time.py`` does), the ratio of the totals, and the test accuracy
after the epoch (a check that both really trained).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tinymtl  # noqa: E402
import tinymtl.nn as nn  # noqa: E402
import tinymtl.nn.functional as F  # noqa: E402
from tinymtl.datasets import mnist  # noqa: E402
from tinymtl.optim import AdamW  # noqa: E402
from tinymtl.train.metrics import evaluate  # noqa: E402

BATCH = 64


class TinymtlEpoch:
    """One epoch of examples/mnist.yaml's CNN, trained a block of batches at a time."""

    def __init__(self, data):
        tinymtl.manual_seed(0)
        self.data = data
        self.model = nn.Sequential(nn.ConvEncoder(1, (28, 28), (32, 64), dropout=0.25),
                                   nn.Linear(128, 10))
        self.optimizer = AdamW(self.model.parameters(), lr=2e-3, weight_decay=1e-4)

    def train(self, batches):
        for index in batches:
            self.optimizer.zero_grad()
            F.cross_entropy(self.model(tinymtl.tensor(self.data.x_train[index])),
                            self.data.y_train[index]).backward()
            self.optimizer.step()

    def test_accuracy(self):
        model = self.model

        class Wrapped(nn.Module):  # evaluate() calls model(x, task)
            def __init__(self):
                super().__init__()
                self.inner = model

            def forward(self, x, task=None):
                return self.inner(x)
        return evaluate(Wrapped(), None, self.data.x_test, self.data.y_test)["test_accuracy"]


class TorchEpoch:
    """The same model and optimizer in PyTorch."""

    def __init__(self, data):
        import torch
        from torch import nn as tnn

        self.torch = torch
        torch.manual_seed(0)
        self.data = data
        self.model = tnn.Sequential(
            tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(32, 64, 3), tnn.ReLU(),
            tnn.MaxPool2d(2), tnn.Flatten(), tnn.Dropout(0.25), tnn.Linear(1600, 128), tnn.ReLU(),
            tnn.Linear(128, 10))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-3, weight_decay=1e-4)
        self.x, self.y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)

    def train(self, batches):
        for index in batches:
            index = self.torch.from_numpy(index)
            self.optimizer.zero_grad()
            self.torch.nn.functional.cross_entropy(self.model(self.x[index]),
                                                   self.y[index]).backward()
            self.optimizer.step()

    def test_accuracy(self):
        self.model.eval()
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(self.data.x_test))
        return float((logits.argmax(1).numpy() == self.data.y_test).mean())


def side_by_side(trainers, batches, block):
    """Train every trainer on ``batches`` in turns of ``block`` batches; returns each one's
    seconds per block."""
    seconds = [[] for _ in trainers]
    for b, k in enumerate(range(0, len(batches), block)):
        turn = list(range(len(trainers)))
        for which in (turn if b % 2 == 0 else turn[::-1]):
            start = time.perf_counter()
            trainers[which].train(batches[k:k + block])
            seconds[which].append(time.perf_counter() - start)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=50, help="steps per turn (default 50)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        data = mnist.load()
    except mnist.DataError as error:
        sys.exit(f"error: {error}")
    order = np.random.default_rng(0).permutation(len(data.y_train))
    batches = [order[k:k + BATCH] for k in range(0, len(order), BATCH)]
    trainers = [TinymtlEpoch(data)]
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        trainers.append(TorchEpoch(data))
    except ImportError:
        pass
    seconds = side_by_side(trainers, batches, args.block)
    ours = sum(seconds[0])
    row = {"tinymtl_s_per_epoch": round(ours, 2), "torch_s_per_epoch": None, "ratio": None,
           "ratio_of_totals": None, "tinymtl_test_accuracy": trainers[0].test_accuracy(),
           "torch_test_accuracy": None, "blocks": len(seconds[0]), "threads": os.cpu_count()}
    if len(trainers) == 2:
        theirs = sum(seconds[1])
        row.update(torch_s_per_epoch=round(theirs, 2),
                   ratio=round(statistics.median(a / b for a, b in zip(*seconds)), 3),
                   ratio_of_totals=round(ours / theirs, 3),
                   torch_test_accuracy=trainers[1].test_accuracy())
    if args.json:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key:<22} {value}")


if __name__ == "__main__":
    main()
