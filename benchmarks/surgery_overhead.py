"""Step-time overhead of gradient surgery versus plain summation, on examples/shapes3.yaml.

    python benchmarks/surgery_overhead.py            # add --json for one JSON object

Every method trains the shapes3 example's model (three heads, joint batches of 64) for the same
steps in the same process, interleaved in blocks so that machine noise hits all alike. We report
the median step time of each and its ratio to ``sum``. Surgery differentiates each task's loss
alone (one backward pass per task through the backbone) and combines the flattened shared
gradients: PCGrad's projections, CAGrad's small simplex problem or MGDA's min-norm weights.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tinymtl.train import config as config_module  # noqa: E402
from tinymtl.train.experiment import build, load_tasks, make_trainer  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "shapes3.yaml")
METHODS = ("sum", "pcgrad", "cagrad", "mgda")


def trainer_for(method, tasks, base):
    config = dict(base, training=dict(base["training"], gradients=method))
    return make_trainer(config, tasks, build(config, tasks), progress=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per block and method")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = config_module.load(EXAMPLE)
    base["tasks"] = {name: dict(spec, train_size=2000, test_size=100)
                     for name, spec in base["tasks"].items()}
    tasks = load_tasks(base)
    trainers = {method: trainer_for(method, tasks, base) for method in METHODS}
    for trainer in trainers.values():  # warm-up: compile kernels, touch memory
        trainer.train_step()
    times = {method: [] for method in METHODS}
    for _ in range(args.blocks):
        for method, trainer in trainers.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                trainer.train_step()
                times[method].append(time.perf_counter() - start)
    median = {m: float(np.median(t)) for m, t in times.items()}
    result = {m: {"step_ms": 1000 * median[m], "ratio_to_sum": median[m] / median["sum"]}
              for m in METHODS}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'method':<8} {'step ms':>8} {'vs sum':>7}")
    for m, r in result.items():
        print(f"{m:<8} {r['step_ms']:8.1f} {r['ratio_to_sum']:7.2f}")


if __name__ == "__main__":
    main()
