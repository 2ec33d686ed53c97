"""Seed noise: one experiment under N seeds, and whether its transfer is more than noise.

``tinymtl run CONFIG --seeds N`` runs the config with seeds s, s+1, …, s+N−1 (both arms: the
multi-task run and its baseline, ``baselines: token_controlled`` or ``single_task``) into
``<out>/seed_<s>/`` and summarises each task over the seeds. With scores oriented so that
higher is better (accuracy; −MAE for regression), multi-task m_1..m_N and baseline b_1..b_N:

    d  = mean(m) − mean(b)
    se = sqrt(s_m² / N + s_b² / N)        s: sample standard deviation (N − 1): the standard
                                          error of d
    genuine transfer    d >  2·se         multi-task better beyond seed noise
    negative transfer   d < −2·se         multi-task worse beyond seed noise
    exposure only       |d| ≤ 2·se        within noise: what remains of the gain is exposure

(2·se: a two-sided ≈95 % interval under a normal approximation.) One seed measures no noise:
its label is "undetermined". Writes ``seeds.json`` and ``seeds.md`` in the output folder.
"""

import copy
import json
import math

import numpy as np

from tinymtl.errors import ArmsFailed
from tinymtl.files import write_text
from tinymtl.report import tables
from tinymtl.runs.arms import Arm, execute
from tinymtl.runs.setup import run_folder
from tinymtl.train.task_kinds import TASK_KINDS

LABELS = ("genuine transfer", "exposure only", "negative transfer", "undetermined")


def mean_std(values):
    """(mean, sample standard deviation; 0 for one value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def transfer_label(multitask, baseline, higher_is_better=True):
    """(label, d, se) for per-seed scores of the two arms (see the module docstring)."""
    sign = 1.0 if higher_is_better else -1.0
    (m, sm), (b, sb) = mean_std(multitask), mean_std(baseline)
    d = sign * (m - b)
    n = min(len(multitask), len(baseline))
    if n < 2:
        return "undetermined", d, None
    se = math.sqrt(sm ** 2 / len(multitask) + sb ** 2 / len(baseline))
    if d > 2 * se:
        return "genuine transfer", d, se
    if d < -2 * se:
        return "negative transfer", d, se
    return "exposure only", d, se


def summarise(summaries):
    """Per task, over the seeds' summaries: both arms' mean ± std, d, se and the label."""
    tasks = {}
    for task, first in summaries[0]["tasks"].items():
        kind = first.get("kind", "classification")
        score = f"test_{TASK_KINDS[kind].score}"
        multitask = [s["tasks"][task][score] for s in summaries]
        entry = {"kind": kind, "score": score, "multitask": multitask,
                 "multitask_mean_std": mean_std(multitask),
                 "tokens": [s["tasks"][task].get("tokens") for s in summaries]}
        baseline_key = f"baseline_{TASK_KINDS[kind].score}"
        if first.get(baseline_key) is not None:
            baseline = [s["tasks"][task][baseline_key] for s in summaries]
            label, d, se = transfer_label(multitask, baseline,
                                          TASK_KINDS[kind].higher_is_better)
            entry.update(baseline=baseline, baseline_kind=first.get("baseline"),
                         baseline_mean_std=mean_std(baseline),
                         baseline_tokens=[s["tasks"][task].get("baseline_tokens")
                                          for s in summaries],
                         difference=d, standard_error=se, label=label)
        tasks[task] = entry
    return tasks


def summarise_continual(summaries):
    """ACC, BWT, FWT and average forgetting, mean ± std over the seeds (continual runs)."""
    if "continual" not in summaries[0]:
        return None
    columns = ("average_accuracy", "backward_transfer", "forward_transfer", "average_forgetting")
    return {c: None if summaries[0]["continual"][c] is None
            else mean_std([s["continual"][c] for s in summaries]) for c in columns}


def run_seeds(config, count, out_dir=None, progress=True, workers=None, scheduler=None,
              threads=1):
    """Run ``config`` under ``count`` consecutive seeds, as the arms of a sweep
    (``runs.arms.execute``: on Dask or serially, ``threads`` BLAS threads each; finished seeds
    reused, interrupted ones resumed); returns (and writes) the summary."""
    out = run_folder(config, out_dir)
    seeds = [config["seed"] + k for k in range(count)]
    arms = [Arm(f"seed_{seed}", dict(copy.deepcopy(config), seed=seed), str(out / f"seed_{seed}"))
            for seed in seeds]
    done, failed = execute(arms, workers, scheduler, threads, progress,
                           again="run the same command again with --resume")
    if failed:
        raise ArmsFailed(failed, f"the others are in {out}")
    summaries = [done[arm.name] for arm in arms]
    result = {"config": config, "seeds": seeds, "baseline": config["baselines"],
              "threads": threads, "tasks": summarise(summaries),
              "continual": summarise_continual(summaries),
              "wall_seconds": round(sum(s["wall_seconds"] for s in summaries), 3)}
    write_text(out / "seeds.json", json.dumps(result, indent=2))
    write_text(out / "seeds.md", tables.seeds(result) + "\n")
    return result
