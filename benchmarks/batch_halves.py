"""What splitting the batch over the cores could gain: a training step as two half-batch
forward/backward passes on two threads, each with one BLAS thread, against the same step on
the whole batch with BLAS's threads (as tinymtl runs it) and PyTorch's, timed in turns.

    python benchmarks/batch_halves.py                 # shapes3_cnn, a table
    python benchmarks/batch_halves.py --winograd --json

Issue #23's measurements found the CNN steps' gap to PyTorch in how they use the second core
(``docs/benchmarks.md``): BLAS splits each product well, but everything between products runs
on one core. Here each thread runs a whole half step (its own copy of the model, the same
weights), and nothing else is changed: the half steps' gradients are averaged
((g₀ + g₁) / 2: each half's loss is a mean over its 32 examples), one Adam step updates the
first copy and its weights are copied to the second. The full-batch gradient is what the halves
must reproduce; ``max_grad_difference`` reports how closely they did (float32: the sums are
split in another order, so not bit for bit). This is a measurement of a design, not a feature.
"""

import argparse
import json
import os
import sys
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import step_time  # noqa: E402  (its models, batch, step functions and timing)
import tinymtl  # noqa: E402
from tinymtl.autograd.ops import winograd  # noqa: E402
from tinymtl.backend.blas import blas_kernels  # noqa: E402
from tinymtl.optim import Adam  # noqa: E402

MODEL = "shapes3_cnn"


class HalvesStep:
    """One training step of shapes3 on the batch split in two halves, one per thread."""

    def __init__(self, blas):
        x, targets = step_time.make_batch(MODEL)
        half = len(x) // 2
        self.blas = blas
        self.models, self.batches = [], []
        for lo, hi in ((0, half), (half, len(x))):
            tinymtl.manual_seed(0)  # the same initial weights in both copies
            self.models.append(step_time.build_tinymtl(MODEL))
            self.batches.append((tinymtl.tensor(x[lo:hi]),
                                 [tinymtl.tensor(t[lo:hi]) for t in targets]))
        self.params = [list(model.parameters()) for model in self.models]
        self.optimizer = Adam(self.params[0], lr=1e-3)
        self.go, self.done = threading.Event(), threading.Event()
        threading.Thread(target=self._second_half, daemon=True).start()

    def _forward_backward(self, k):
        model, (x, targets) = self.models[k], self.batches[k]
        for p in self.params[k]:
            p.grad = None
        step_time.tinymtl_loss(MODEL, model(x), targets).backward()

    def _second_half(self):
        while True:
            self.go.wait()
            self.go.clear()
            self._forward_backward(1)
            self.done.set()

    def gradients(self):
        """The averaged gradient of the two halves, as the optimizer receives it."""
        previous = self.blas.get_num_threads()
        self.blas.set_num_threads(1)
        try:
            self.go.set()
            self._forward_backward(0)
            self.done.wait()
            self.done.clear()
        finally:
            self.blas.set_num_threads(previous)
        for first, second in zip(*self.params):
            first.grad = (first.grad + second.grad) * np.float32(0.5)
        return [p.grad for p in self.params[0]]

    def __call__(self):
        self.gradients()
        self.optimizer.step()
        for first, second in zip(*self.params):
            np.copyto(second.data, first.data)


def full_batch_gradients():
    """shapes3's gradient on the whole batch (the step being split), at the same weights."""
    tinymtl.manual_seed(0)
    model = step_time.build_tinymtl(MODEL)
    x, targets = step_time.make_batch(MODEL)
    step_time.tinymtl_loss(MODEL, model(tinymtl.tensor(x)),
                           [tinymtl.tensor(t) for t in targets]).backward()
    return [p.grad for p in model.parameters()]


def measure(args, blas):
    """Time the three steps in turns; the row that main prints."""
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch = None

    halves = HalvesStep(blas)
    split, whole = halves.gradients(), full_batch_gradients()
    difference = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30))
                     for a, b in zip(split, whole))
    steps = [step_time.tinymtl_step_fn(MODEL), halves]
    steps += [step_time.torch_step_fn(MODEL)] if torch else []
    (full_ms, halves_ms, *torch_ms), _ = step_time.median_ms(steps, args.warmup, args.repeats,
                                                             args.rounds)
    torch_ms = torch_ms[0] if torch_ms else None
    return {"model": MODEL, "winograd": args.winograd, "full_batch_ms": round(full_ms, 3),
           "halves_ms": round(halves_ms, 3),
           "torch_ms": None if torch_ms is None else round(torch_ms, 3),
           "full_ratio": None if torch_ms is None else round(full_ms / torch_ms, 3),
           "halves_ratio": None if torch_ms is None else round(halves_ms / torch_ms, 3),
           "max_grad_difference": difference,  # relative to each gradient's largest value
           "blas": blas_kernels(), "threads": os.cpu_count()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--winograd", action="store_true",
                        help="tinymtl's 3x3 convolutions by Winograd F(2x2, 3x3) in both steps")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    from threadpoolctl import ThreadpoolController

    found = ThreadpoolController().select(user_api="blas").lib_controllers
    if not found:
        sys.exit("error: threadpoolctl finds no BLAS to run on one thread per half")
    chosen, winograd.WINOGRAD = winograd.WINOGRAD, args.winograd
    try:
        row = measure(args, found[0])
    finally:
        winograd.WINOGRAD = chosen
    if args.json:
        print(json.dumps(row))
        return
    full_ms, halves_ms, torch_ms = row["full_batch_ms"], row["halves_ms"], row["torch_ms"]
    print(f"{MODEL}{' (Winograd)' if args.winograd else ''}, {os.cpu_count()} threads, "
          f"BLAS kernels {row['blas']}; halves' gradient vs the full batch's: "
          f"{row['max_grad_difference']:.1e} (relative)")
    print(f"whole batch {full_ms:.2f} ms   two halves on two threads {halves_ms:.2f} ms   "
          f"torch {'n/a' if torch_ms is None else f'{torch_ms:.2f}'} ms")
    if torch_ms:
        print(f"ratio to torch: whole batch {row['full_ratio']:.2f}, "
              f"halves {row['halves_ratio']:.2f}")

if __name__ == "__main__":
    main()
