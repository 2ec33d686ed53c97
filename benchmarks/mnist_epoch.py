"""Wall time of one MNIST training epoch: tinymtl vs PyTorch CPU, same CNN, same data.

    tinymtl data fetch mnist          # once
    python benchmarks/mnist_epoch.py  # add --json for one JSON object

The model is examples/mnist.yaml's: [Conv3x3 -> ReLU -> MaxPool2] x (32, 64) -> Flatten ->
Dropout(0.25) -> Linear(1600, 128) -> ReLU -> Linear(128, 10); AdamW (lr 2e-3, weight decay
1e-4), batch 64, float32, all threads. Each framework trains one full epoch over the 60,000
training images in the same shuffled order; we report seconds per epoch, their ratio, and the
test accuracy after that epoch (a check that both really trained).
"""

import argparse
import json
import os
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


def tinymtl_epoch(data, order):
    tinymtl.manual_seed(0)
    model = nn.Sequential(nn.ConvEncoder(1, (28, 28), (32, 64), dropout=0.25),
                          nn.Linear(128, 10))
    optimizer = AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    start = time.perf_counter()
    for k in range(0, len(order), BATCH):
        index = order[k:k + BATCH]
        optimizer.zero_grad()
        F.cross_entropy(model(tinymtl.tensor(data.x_train[index])), data.y_train[index]).backward()
        optimizer.step()
    seconds = time.perf_counter() - start

    class Wrapped(nn.Module):  # evaluate() calls model(x, task)
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x, task=None):
            return self.inner(x)
    return seconds, evaluate(Wrapped(), None, data.x_test, data.y_test)["test_accuracy"]


def torch_epoch(data, order):
    import torch
    from torch import nn as tnn

    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
                           tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                           tnn.Dropout(0.25), tnn.Linear(1600, 128), tnn.ReLU(),
                           tnn.Linear(128, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    start = time.perf_counter()
    for k in range(0, len(order), BATCH):
        index = torch.from_numpy(order[k:k + BATCH])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_test))
    accuracy = float((logits.argmax(1).numpy() == data.y_test).mean())
    return seconds, accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        data = mnist.load()
    except mnist.DataError as error:
        sys.exit(f"error: {error}")
    order = np.random.default_rng(0).permutation(len(data.y_train))
    ours, our_accuracy = tinymtl_epoch(data, order)
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        theirs, their_accuracy = torch_epoch(data, order)
    except ImportError:
        theirs = their_accuracy = None
    row = {"tinymtl_s_per_epoch": round(ours, 2), "torch_s_per_epoch": theirs and round(theirs, 2),
           "ratio": theirs and round(ours / theirs, 3), "tinymtl_test_accuracy": our_accuracy,
           "torch_test_accuracy": their_accuracy, "threads": os.cpu_count()}
    if args.json:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key:<22} {value}")


if __name__ == "__main__":
    main()
