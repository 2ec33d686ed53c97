"""Step-time overhead of gradient surgery (and loss weighting) versus plain summation.

    python benchmarks/surgery_overhead.py            # shapes3: sum / pcgrad / cagrad / mgda /
                                                     # mgda_ub (and MGDA-UB's speed-up on MGDA)
    python benchmarks/surgery_overhead.py --example kindergarten_math
                                    # the flagship, mixed batches: the strategies compared in
                                    # examples/compare_strategies.yaml
    (add --json for one JSON object)

Every method trains the example's model for the same steps in the same process, interleaved
in blocks so that machine noise hits all alike. We report the median step time of each and
its ratio to the first (plain summation). Surgery differentiates each task's loss
alone (one backward pass per task through the backbone) and combines the flattened shared
gradients: PCGrad's projections, CAGrad's small simplex problem or MGDA's min-norm weights.
MGDA-UB solves MGDA's problem on the gradients with respect to the shared representation
(one backward per task through its head only), then makes one backward pass through the
backbone: its ratio to MGDA is the speed-up of the upper bound.
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tinymtl.train import config as config_module  # noqa: E402
from tinymtl.runs.multitask import make_trainer
from tinymtl.runs.setup import build, load_tasks  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
STRATEGIES = {  # example -> {name: training overrides}; the first is the reference
    "shapes3": {"sum": {}, "pcgrad": {"gradients": "pcgrad"}, "cagrad": {"gradients": "cagrad"},
                "mgda": {"gradients": "mgda"}, "mgda_ub": {"gradients": "mgda_ub"}},
    "kindergarten_math": {
        "equal": {"schedule": "mixed", "weighting": "equal"},
        "uncertainty": {"schedule": "mixed", "weighting": "uncertainty"},
        "gradnorm": {"schedule": "mixed", "weighting": "gradnorm"},
        "pcgrad": {"schedule": "mixed", "weighting": "equal", "gradients": "pcgrad"},
        "cagrad": {"schedule": "mixed", "weighting": "equal", "gradients": "cagrad"}},
}


def trainer_for(overrides, tasks, base):
    config = config_module.validate(copy.deepcopy(
        dict(base, training=dict(base["training"], **overrides))))
    return make_trainer(config, tasks, build(config, tasks), progress=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per block and method")
    parser.add_argument("--example", choices=sorted(STRATEGIES), default="shapes3")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = config_module.load(os.path.join(EXAMPLES, f"{args.example}.yaml"))
    base["tasks"] = {name: dict(spec, train_size=2000, test_size=100)
                     for name, spec in base["tasks"].items()}
    tasks = load_tasks(base)
    methods = list(STRATEGIES[args.example])
    trainers = {m: trainer_for(STRATEGIES[args.example][m], tasks, base) for m in methods}
    for trainer in trainers.values():  # warm-up: compile kernels, touch memory
        trainer.train_step()
    times = {method: [] for method in methods}
    for _ in range(args.blocks):
        for method, trainer in trainers.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                trainer.train_step()
                times[method].append(time.perf_counter() - start)
    median = {m: float(np.median(t)) for m, t in times.items()}
    reference = methods[0]
    result = {m: {"step_ms": 1000 * median[m], "ratio": median[m] / median[reference]}
              for m in methods}
    speedup = (median["mgda"] / median["mgda_ub"]) if {"mgda", "mgda_ub"} <= set(median) \
        else None
    if args.json:
        print(json.dumps({"example": args.example, "reference": reference, "methods": result,
                          "mgda_ub_speedup_over_mgda": speedup}))
        return
    print(f"{'method':<12} {'step ms':>8} {'vs ' + reference:>10}")
    for m, r in result.items():
        print(f"{m:<12} {r['step_ms']:8.1f} {r['ratio']:10.2f}")
    if speedup is not None:
        print(f"MGDA-UB speed-up over MGDA: {speedup:.2f}x")


if __name__ == "__main__":
    main()
