"""How close is the memory estimate (``tinymtl/runs/memory.py``) to what a run really uses?

    python benchmarks/memory_estimate.py examples/kindergarten_math.yaml examples/shapes3.yaml

For each config: the estimate (the plan before anything is allocated, plus one batch's
activations measured on the built model) against the growth of the process's peak resident
memory over the run (``resource.getrusage``), 300 steps without baselines. Run each config in
a fresh process (the peak only grows): this script starts one per config.
"""

import json
import resource
import subprocess
import sys
import tempfile


def measure(path):
    from tinymtl.runs import memory, run, setup
    from tinymtl.train import config as config_module

    config = config_module.load(path, config_module.read_yaml(path), [
        "training.steps=300", "baselines=none", "linear_baseline=false"])
    plan = memory.plan(config, setup.task_specs(config), setup.shares_one_head(config))
    step = {}
    check_step = memory.check_step

    def spy(config, model, tasks):
        step.update(memory.step(config, model, tasks))
        return check_step(config, model, tasks)

    memory.check_step = spy
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with tempfile.TemporaryDirectory() as out:
        run(config, out, progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    parts = dict(plan, activations=step["activations"])
    return {"config": path, "estimate_mib": round(sum(parts.values()) / 2 ** 20, 1),
            "parts_mib": {k: round(v / 2 ** 20, 1) for k, v in parts.items()},
            "measured_peak_growth_mib": round((after - before) / 2 ** 20, 1)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure(sys.argv[2])))
    else:
        for path in sys.argv[1:]:
            print(subprocess.run([sys.executable, __file__, "--one", path], check=True,
                                 capture_output=True, text=True).stdout.strip())
