"""Time one full training step (forward, backward, Adam lr 1e-3) in tinymtl and in PyTorch.

    python benchmarks/step_time.py                  # a table (CPU: tinymtl NumPy/Numba vs torch)
    python benchmarks/step_time.py --json           # one JSON object per model per line
    python benchmarks/step_time.py --device cuda    # tinymtl CuPy vs PyTorch CUDA, same shapes

Both frameworks run the same model on the same shapes in the same process, float32, with all
the machine's threads; they take turns in blocks of steps and the median step of each is reported,
with the ratio tinymtl/torch.
Achieved GFLOP/s counts the matrix-product work of a step (forward + 2x backward) and is shown
against this machine's float32 matrix-product rate, measured here too.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tinymtl  # noqa: E402
import tinymtl.nn as nn  # noqa: E402
import tinymtl.nn.functional as F  # noqa: E402
from tinymtl.backend.blas import blas_kernels  # noqa: E402
from tinymtl.optim import Adam  # noqa: E402

MODELS = ("mlp", "shapes3_cnn", "mnist_cnn")
# untimed steps per block, at least (s): an idle BLAS or OpenMP pool keeps its threads spinning
# for a while after its framework's block, which slowed the other's first steps on the 2-core
# host (PyTorch's per-conv parts ran 2x slower after 2 warm-up calls than after 0.3 s of them)
WARMUP_SECONDS = 0.5


# -- the three models, written once per framework -------------------------------------------
def build_tinymtl(name):
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    # the CNNs as tinymtl's models build them (nn.ConvEncoder): Conv3x3 -> ReLU -> MaxPool2
    # blocks, the layers PyTorch runs below
    if name == "mnist_cnn":  # + Flatten -> Linear(1600, 128) -> ReLU, then the classifier
        return nn.Sequential(nn.ConvEncoder(1, (28, 28), (32, 64)), nn.Linear(128, 10))
    backbone = nn.Sequential(nn.ConvEncoder(1, (32, 32), (32, 64, 128), padding=1,
                                            out_features=None),  # (the last block unpooled)
                             nn.GlobalAvgPool2d())
    heads = nn.ModuleList([nn.Linear(128, 10), nn.Linear(128, 32), nn.Linear(128, 1)])
    return _ThreeHead(backbone, heads)


class _ThreeHead(nn.Module):
    def __init__(self, backbone, heads):
        super().__init__()
        self.backbone, self.heads = backbone, heads

    def forward(self, x):
        features = self.backbone(x)
        return [head(features) for head in self.heads]


def build_torch(name):
    from torch import nn as tnn

    if name == "mlp":
        return tnn.Sequential(tnn.Linear(784, 256), tnn.ReLU(), tnn.Linear(256, 256), tnn.ReLU(),
                              tnn.Linear(256, 10))
    if name == "mnist_cnn":
        return tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                              tnn.Linear(1600, 128), tnn.ReLU(), tnn.Linear(128, 10))

    class ThreeHead(tnn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = tnn.Sequential(
                tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Conv2d(64, 128, 3, padding=1), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1),
                tnn.Flatten())
            self.heads = tnn.ModuleList([tnn.Linear(128, 10), tnn.Linear(128, 32),
                                         tnn.Linear(128, 1)])

        def forward(self, x):
            features = self.backbone(x)
            return [head(features) for head in self.heads]

    return ThreeHead()


def make_batch(name, seed=0):
    rng = np.random.default_rng(seed)
    if name == "mlp":
        x = rng.standard_normal((128, 784)).astype(np.float32)
        return x, [rng.integers(0, 10, 128)]
    if name == "mnist_cnn":
        x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
        return x, [rng.integers(0, 10, 64)]
    x = rng.standard_normal((64, 1, 32, 32)).astype(np.float32)
    return x, [rng.integers(0, 10, 64), rng.integers(0, 32, 64),
               rng.random((64, 1)).astype(np.float32)]


def matmul_flops(name):
    """Multiply-add FLOPs of the forward pass's matrix products and convolutions."""
    def conv(batch, cin, cout, k, oh, ow):
        return 2 * batch * cout * oh * ow * cin * k * k
    if name == "mlp":
        return 2 * 128 * (784 * 256 + 256 * 256 + 256 * 10)
    if name == "mnist_cnn":
        return (conv(64, 1, 32, 3, 26, 26) + conv(64, 32, 64, 3, 11, 11)
                + 2 * 64 * (1600 * 128 + 128 * 10))
    return (conv(64, 1, 32, 3, 32, 32) + conv(64, 32, 64, 3, 16, 16) + conv(64, 64, 128, 3, 8, 8)
            + 2 * 64 * 128 * (10 + 32 + 1))


# -- one training step in each framework -----------------------------------------------------
def synchronize(device):
    """Wait for the GPU to finish what was queued (a no-op on the CPU): GPU timings need it."""
    if device == "cuda":
        tinymtl.backend.array_module("cuda").cuda.Device().synchronize()


def tinymtl_loss(name, out, targets):
    """The step's loss: shapes3's three heads summed (two cross-entropies and an MSE), else one
    cross-entropy."""
    if name == "shapes3_cnn":
        return (F.cross_entropy(out[0], targets[0]) + F.cross_entropy(out[1], targets[1])
                + F.mse_loss(out[2], targets[2]))
    return F.cross_entropy(out, targets[0])


def tinymtl_step_fn(name, device="cpu"):
    tinymtl.set_device(device)
    tinymtl.manual_seed(0)
    model = build_tinymtl(name)
    optimizer = Adam(model.parameters(), lr=1e-3)
    x, targets = make_batch(name)
    x = tinymtl.tensor(x, device=device)
    targets = [tinymtl.tensor(t, device=device) for t in targets]

    def step():
        optimizer.zero_grad()
        tinymtl_loss(name, model(x), targets).backward()
        optimizer.step()
        synchronize(device)
    return step


def torch_step_fn(name, device="cpu"):
    import torch
    import torch.nn.functional as TF

    torch.manual_seed(0)
    model = build_torch(name).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, targets = make_batch(name)
    x = torch.from_numpy(x).to(device)
    targets = [torch.from_numpy(t).to(device) for t in targets]

    def step():
        optimizer.zero_grad()
        out = model(x)
        if name == "shapes3_cnn":
            loss = (TF.cross_entropy(out[0], targets[0]) + TF.cross_entropy(out[1], targets[1])
                    + TF.mse_loss(out[2], targets[2]))
        else:
            loss = TF.cross_entropy(out, targets[0])
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return step


def median_ms(steps, warmup, repeats, rounds=5, warmup_seconds=0.0):
    """(median ms/step of each step function, [its median in each block]). The frameworks take
    turns in blocks (ours, theirs, ours, ...: ``rounds`` blocks each) so slow drifts of the
    machine hit both alike; each block starts with untimed steps (``warmup`` of them, and for at
    least ``warmup_seconds``), because one framework's idle thread pool keeps spinning for a
    while and slows the other's first steps. The blocks' own medians show how much the
    machine moved during the run: a ratio from a block of each, side by side, is one sample."""
    times = [[] for _ in steps]
    blocks = [[] for _ in steps]
    per_block = max(1, repeats // rounds)
    for _ in range(rounds):
        for step, bucket, medians in zip(steps, times, blocks):
            started, done = time.perf_counter(), 0
            while done < warmup or time.perf_counter() - started < warmup_seconds:
                step()
                done += 1
            block = []
            for _ in range(per_block):
                start = time.perf_counter()
                step()
                block.append(time.perf_counter() - start)
            bucket.extend(block)
            medians.append(statistics.median(block) * 1e3)
    return [statistics.median(bucket) * 1e3 for bucket in times], blocks


def machine_gflops(size=None, repeats=5, device="cpu"):
    """The float32 matrix-product rate: NumPy's BLAS (2048²), or cuBLAS through CuPy (8192²)."""
    size = size or (8192 if device == "cuda" else 2048)
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    a = tinymtl.backend.to_device(a, device)
    product = (lambda: (a @ a, synchronize(device)))
    product()
    best = min(_timed(product) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5,
                        help="blocks per framework, taking turns (the repeats are split among them)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per block")
    parser.add_argument("--warmup-seconds", type=float, default=WARMUP_SECONDS,
                        help="and untimed steps for at least this long per block")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: tinymtl on CuPy against PyTorch on CUDA")
    parser.add_argument("--peak-size", type=int, default=None,
                        help="side of the matrix product that measures the peak rate")
    args = parser.parse_args(argv)
    try:
        tinymtl.set_device(args.device)
    except tinymtl.backend.device.DeviceUnavailableError as error:
        sys.exit(f"error: {error}")
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        if args.device == "cuda" and not torch.cuda.is_available():
            print("note: PyTorch has no CUDA here; timing tinymtl alone", file=sys.stderr)
            torch = None
    except ImportError:
        torch = None
    peak = machine_gflops(args.peak_size, device=args.device)
    rows = []
    for name in args.models:
        ours_step = tinymtl_step_fn(name, args.device)
        for _ in range(args.warmup):
            ours_step()
        rss = peak_rss_mb()  # before torch runs, so it is tinymtl's peak
        steps = [ours_step] + ([torch_step_fn(name, args.device)] if torch else [])
        timings, blocks = median_ms(steps, args.warmup, args.repeats, args.rounds,
                                    args.warmup_seconds)
        ours, theirs = timings[0], (timings[1] if torch else None)
        block_ratios = ([round(a / b, 3) for a, b in zip(*blocks)] if torch else None)
        gflops = 3 * matmul_flops(name) / (ours / 1e3) / 1e9
        row = {"model": name, "tinymtl_ms": round(ours, 3),
               "torch_ms": None if theirs is None else round(theirs, 3),
               "ratio": None if theirs is None else round(ours / theirs, 3),
               "block_ratios": block_ratios,  # one per round: the run's own spread
               "tinymtl_peak_rss_mb": round(rss, 1), "tinymtl_gflops": round(gflops, 1),
               "machine_matmul_gflops": round(peak, 1), "device": args.device,
               "blas": blas_kernels() if args.device == "cpu" else "cuBLAS",
               "threads": os.cpu_count()}
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        where = (f"{os.cpu_count()} threads, BLAS kernels {blas_kernels()}"
                 if args.device == "cpu" else "cuBLAS")
        print(f"float32 matrix product on this machine: {peak:.1f} GFLOP/s ({where})")
        print(f"{'model':<12} {'tinymtl ms':>11} {'torch ms':>9} {'ratio':>6} {'blocks':>11} "
              f"{'GFLOP/s':>8} {'% of peak':>9} {'peak RSS MB':>11}")
        for r in rows:
            torch_ms = "n/a" if r["torch_ms"] is None else f"{r['torch_ms']:.2f}"
            ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
            spread = ("n/a" if r["block_ratios"] is None
                      else f"{min(r['block_ratios']):.2f}-{max(r['block_ratios']):.2f}")
            print(f"{r['model']:<12} {r['tinymtl_ms']:>11.2f} {torch_ms:>9} {ratio:>6} {spread:>11} "
                  f"{r['tinymtl_gflops']:>8.1f} {100 * r['tinymtl_gflops'] / peak:>8.1f}% "
                  f"{r['tinymtl_peak_rss_mb']:>11.0f}")


if __name__ == "__main__":
    main()
