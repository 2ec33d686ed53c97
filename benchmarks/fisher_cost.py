"""Cost of EWC's diagonal Fisher per example, for each ``continual.fisher`` kind, on the
permuted-MNIST MLP (784-1000-1000, a 10-way head), one BLAS thread as a sweep's arm has.

    OPENBLAS_NUM_THREADS=1 python benchmarks/fisher_cost.py [--examples 100]

``diagonal_fisher`` takes one example at a time (squares of per-example gradients): one
backward pass an example, one per class for ``exact``. Random inputs; only the time matters.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tinymtl.nn as nn  # noqa: E402
from tinymtl.backend.random import Generator  # noqa: E402
from tinymtl.mtl.continual import FISHER_KINDS, diagonal_fisher  # noqa: E402


class PermutedMnistMLP(nn.Module):
    """The sweep's network: the library's MLP encoder (as ``model.encoder: mlp`` builds it) and
    one task's 10-way head."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.MLPEncoder(784, (1000, 1000))
        self.head = nn.Linear(self.encoder.out_features, 10)

    def forward(self, x, task=None):
        return self.head(self.encoder(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    args = parser.parse_args()
    model = PermutedMnistMLP()
    model.eval()
    rng = np.random.default_rng(0)
    x = rng.random((args.examples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.examples)
    diagonal_fisher(model, None, x[:1], y[:1])  # warm-up: first calls pay for setup
    for kind in FISHER_KINDS:
        started = time.perf_counter()
        diagonal_fisher(model, None, x, y, generator=Generator(0), kind=kind)
        print(f"{kind:10s} {(time.perf_counter() - started) / len(x) * 1e3:6.2f} ms an example")


if __name__ == "__main__":
    main()
