"""Each convolution of the benchmarked CNNs, forward and both gradients, in GFLOP/s.

    python benchmarks/conv_layers.py            # a table
    python benchmarks/conv_layers.py --json     # one JSON object per layer and part per line

For every conv layer of ``step_time.py``'s ``shapes3_cnn`` and ``mnist_cnn`` (batch 64,
float32): the forward pass, the input gradient and the weight gradient, each timed alone, in
tinymtl's two ways (im2col + one product; Winograd F(2×2, 3×3) where it applies) and in
PyTorch CPU (``aten.convolution_backward`` with one output mask per gradient). The ways take
turns in blocks and the median is kept; GFLOP/s is 2·N·K·C·KH·KW·OH·OW per part (the direct
method's count, whichever way computes it) against the float32 matrix-product rate measured in
the same run. The BLAS kernels in use are printed: they change both.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tinymtl.autograd.ops import conv as conv_ops  # noqa: E402
from tinymtl.autograd.ops import winograd  # noqa: E402
from tinymtl.backend.blas import blas_kernels  # noqa: E402

from step_time import WARMUP_SECONDS, machine_gflops, median_ms  # noqa: E402  (the same timing)

LAYERS = [  # name, in channels, out channels, image size, padding
    ("shapes3.conv1", 1, 32, 32, 1), ("shapes3.conv2", 32, 64, 16, 1),
    ("shapes3.conv3", 64, 128, 8, 1),
    ("mnist.conv1", 1, 32, 28, 0), ("mnist.conv2", 32, 64, 13, 0),
]
BATCH = 64
PARTS = ("forward", "input_grad", "weight_grad")


def tinymtl_parts(function, x, w, padding, **geometry):
    """{part: callable} running one part of ``function`` (an autograd Function class)."""
    def context(needs):
        ctx = function(padding=(padding, padding), **geometry)
        ctx.needs_input_grad = needs
        return ctx

    ctx = context((True, True))
    y = ctx.forward(x, w)
    grad = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    grad = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # as y
    input_ctx, weight_ctx = context((True, False)), context((False, True))
    input_ctx.forward(x, w)
    weight_ctx.forward(x, w)
    return {"forward": lambda: context((True, True)).forward(x, w),
            "input_grad": lambda: input_ctx.backward(grad),
            "weight_grad": lambda: weight_ctx.backward(grad)}


def torch_parts(x, w, padding):
    import torch

    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(tx, tw, padding=padding)
    grad = torch.from_numpy(np.random.default_rng(1).standard_normal(tuple(y.shape))
                            .astype(np.float32))

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            grad, tx, tw, None, [1, 1], [padding, padding], [1, 1], False, [0, 0], 1, mask)

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, padding=padding)
    return {"forward": forward, "input_grad": backward([True, False, False]),
            "weight_grad": backward([False, True, False])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch = None
    peak = machine_gflops()
    rows = []
    for name, cin, cout, size, padding in LAYERS:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, size, size, cin)).astype(np.float32).transpose(0, 3, 1, 2)
        w = (rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32)
        out = size + 2 * padding - 2
        flops = 2 * BATCH * cout * cin * 9 * out * out
        ways = {"im2col": tinymtl_parts(conv_ops.Conv2d, x, w, padding, stride=(1, 1),
                                        dilation=(1, 1), groups=1),
                "winograd": tinymtl_parts(winograd.WinogradConv2d, x, w, padding)}
        if torch is not None:
            ways["torch"] = torch_parts(np.ascontiguousarray(x), w, padding)
        for part in PARTS:
            times, _ = median_ms([parts[part] for parts in ways.values()], warmup=2,
                                 repeats=args.repeats, warmup_seconds=WARMUP_SECONDS)
            row = {"layer": name, "part": part, "gflop": flops / 1e9,
                   "machine_matmul_gflops": round(peak, 1), "blas": blas_kernels(),
                   "conv2d_uses": "winograd" if winograd.applies(w.shape, (1, 1), (1, 1), 1)
                   else "im2col"}
            for way, ms in zip(ways, times):
                row[f"{way}_ms"] = round(ms, 3)
                row[f"{way}_gflops"] = round(flops / (ms / 1e3) / 1e9, 1)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print(f"float32 matrix product: {peak:.0f} GFLOP/s ({os.cpu_count()} threads, BLAS "
              f"kernels {blas_kernels()}); GFLOP/s per part (ms)")
        print(f"{'layer':<15} {'part':<12} {'im2col':>15} {'winograd':>15} {'torch':>15} "
              f"{'conv2d uses':>12}")
        for r in rows:
            cells = [f"{r[f'{way}_gflops']:6.0f} ({r[f'{way}_ms']:5.2f})"
                     if f"{way}_ms" in r else "-" for way in ("im2col", "winograd", "torch")]
            print(f"{r['layer']:<15} {r['part']:<12} {cells[0]:>15} {cells[1]:>15} "
                  f"{cells[2]:>15} {r['conv2d_uses']:>12}")


if __name__ == "__main__":
    main()
