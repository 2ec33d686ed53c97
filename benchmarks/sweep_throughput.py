"""Throughput of a 12-arm sweep: serially in one process vs a Dask LocalCluster (issue #22).

    python benchmarks/sweep_throughput.py               # 12 arms of the flagship, 300 steps
    python benchmarks/sweep_throughput.py --steps 600 --json

The grid: the flagship (examples/kindergarten_math.yaml, mixed batches, its baselines off)
under 3 loss weightings × 2 learning rates × 2 seeds = 12 arms, each an ordinary run. Every
arm is run three ways, each into a fresh folder, in this order:

- ``serial, 1 thread``: one after another in this process, one BLAS thread each: what
  ``--workers 0`` does, and the bitwise reference for the Dask run;
- ``serial, all cores``: one after another, BLAS free to use every core (how a single
  ``tinymtl run`` trains): the fair serial baseline;
- ``LocalCluster``: one single-threaded worker process per core (``tinymtl sweep``'s default).

Reported: wall time, arms per hour and its ratio to each serial way; whether the Dask arms'
weights equal the serial 1-thread arms' bit for bit; and the scheduler's overhead, three ways:
the cluster's start, the round trip of an empty task (Dask's own cost per task), and the
core-seconds per arm spent outside any arm's training,

    (workers × wall − Σ arm wall) / arms

(an arm's wall: its summary's wall_seconds), which adds to Dask's cost the workers' start and
imports, reading the data in each worker, and cores idle while the last arms finish.
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tinymtl.runs import arms as arm_runner  # noqa: E402
from tinymtl.runs import sweep as sweeps  # noqa: E402
from tinymtl.train import checkpoint  # noqa: E402
from tinymtl.train import config as config_module  # noqa: E402

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "kindergarten_math.yaml"


def the_sweep(steps):
    raw = config_module.read_yaml(EXAMPLE)
    raw["training"].update(steps=steps, schedule="mixed", eval_every=max(steps // 3, 1),
                           checkpoint_every=max(steps // 3, 1))
    raw["baselines"], raw["linear_baseline"] = "none", False
    spec = {"base": str(EXAMPLE), "seeds": 2,
            "arms": {w: {"training": {"weighting": w}} for w in ("equal", "uncertainty", "dwa")},
            "grid": {"training.lr": [0.003, 0.001]}}
    with tempfile.TemporaryDirectory() as folder:
        base = pathlib.Path(folder) / "base.yaml"
        base.write_text(json.dumps(raw))  # (JSON is YAML)
        spec["base"] = str(base)
        return sweeps.load(pathlib.Path(folder) / "bench.yaml",
                           {"name": "bench", "sweep": spec})


def timed(arms, **how):
    started = time.perf_counter()
    done, failed = arm_runner.execute(arms, progress=False, **how)
    assert not failed, failed
    return time.perf_counter() - started, done


def empty_task_round_trip(count=200):
    """(cluster start s, ms per empty task round trip) on a 2-worker LocalCluster."""
    import logging

    from distributed import Client, LocalCluster

    started = time.perf_counter()
    cluster = LocalCluster(n_workers=os.cpu_count(), threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    client.gather(client.submit(int, 0, pure=False))
    start_seconds = time.perf_counter() - started
    started = time.perf_counter()
    client.gather([client.submit(int, k, pure=False) for k in range(count)])
    per_task = (time.perf_counter() - started) / count
    client.close()
    cluster.close()
    return start_seconds, 1000 * per_task


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per arm")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sweep = the_sweep(args.steps)
    workers = os.cpu_count()
    results, arms_of_way = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        sweeps.load_tasks(next(iter(sweep["variants"].values()))["config"])  # data cached first
        for name, how in (("serial, 1 thread", {"workers": 0, "threads": 1}),
                          ("serial, all cores", {"workers": 0, "threads": None}),
                          ("LocalCluster", {"workers": workers, "threads": 1})):
            arms = sweeps.arms_of(sweep, folder / name.replace(", ", "_").replace(" ", "_"))
            wall, done = timed(arms, **how)
            arms_of_way[name] = arms
            busy = sum(s["wall_seconds"] for s in done.values())
            results[name] = {"wall_seconds": round(wall, 2), "arms": len(arms),
                             "arms_per_hour": round(3600 * len(arms) / wall, 1),
                             "sum_of_arm_walls": round(busy, 2)}
            if name == "LocalCluster":  # core-seconds not spent inside an arm, per arm
                results[name]["outside_arms_per_arm_seconds"] = round(
                    (workers * wall - busy) / len(arms), 2)
        equal = all(
            all(np.array_equal(a, b) for a, b in zip(
                checkpoint.load(pathlib.Path(x.out) / "checkpoint.h5")["model_state"].values(),
                checkpoint.load(pathlib.Path(y.out) / "checkpoint.h5")["model_state"].values()))
            for x, y in zip(arms_of_way["serial, 1 thread"], arms_of_way["LocalCluster"]))
    start_seconds, task_ms = empty_task_round_trip()
    dask = results["LocalCluster"]
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "steps": args.steps,
              "workers": workers, "ways": results,
              "speedup_vs_serial_1_thread": round(
                  results["serial, 1 thread"]["wall_seconds"] / dask["wall_seconds"], 2),
              "speedup_vs_serial_all_cores": round(
                  results["serial, all cores"]["wall_seconds"] / dask["wall_seconds"], 2),
              "dask_bitwise_equal_to_serial_1_thread": equal,
              "cluster_start_seconds": round(start_seconds, 2),
              "empty_task_round_trip_ms": round(task_ms, 2)}
    if args.json:
        print(json.dumps(report))
        return
    print(f"12-arm sweep, {args.steps} steps per arm, {report['machine']}")
    print(f"{'way':<20} {'wall s':>8} {'arms/hour':>10} {'Σ arm wall s':>13}")
    for name, row in results.items():
        print(f"{name:<20} {row['wall_seconds']:>8.1f} {row['arms_per_hour']:>10.1f} "
              f"{row['sum_of_arm_walls']:>13.1f}")
    print(f"LocalCluster vs serial 1 thread: {report['speedup_vs_serial_1_thread']}x; vs "
          f"serial all cores: {report['speedup_vs_serial_all_cores']}x; bitwise equal to serial "
          f"1 thread: {equal}")
    print(f"scheduler: cluster start {start_seconds:.2f} s, empty task {task_ms:.2f} ms, "
          f"core-seconds outside arms per arm {dask['outside_arms_per_arm_seconds']:.2f} s "
          f"(module docstring)")


if __name__ == "__main__":
    main()
