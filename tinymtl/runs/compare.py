"""Strategy comparison: one base experiment under several MTL strategies × several seeds.

A comparison config names a base run config and the strategies (each a few overrides of it):

    compare:
      base: kindergarten_math.yaml        # relative to the comparison file
      seeds: 3                            # base seed, +1, +2
      common: {training: {schedule: mixed}}               # applied to every arm
      strategies:
        equal:  {training: {weighting: equal}}
        pcgrad: {training: {weighting: equal, gradients: pcgrad}}

``tinymtl run`` on such a file trains every strategy × seed (``<out>/<strategy>/seed_<s>/``),
and per seed a single-task reference per task: the task alone, token-controlled (exactly the
tokens it consumed in the multi-task runs). It reports per task the held-out score mean ± std,
the multi-task gain as LibMTL defines it (Maninis et al. 2019),

    Δm% = (100 / T) Σ_t (−1)^(l_t) (M_t − M_t^single) / M_t^single
          l_t = 1 where lower is better (MAE), 0 where higher is (accuracy),

computed per seed against that seed's reference, and the mean training-step time (ms, no
evaluation). The figures reported are on the test split; the strategy it *chooses*
(``chosen_on_valid``) is the one with the best Δm% on the validation split, so the choice
never looks at test. Writes ``comparison.json``, ``comparison.md`` and ``comparison.png``.

When the base is a continual sequence (``continual.stages``), each strategy's row is instead
its accuracy-matrix summary (``continual_metrics``): ACC, BWT, FWT and average forgetting,
mean ± std over the seeds, with the wall time of a run; the choice is the best ACC on the
validation splits' matrix.
"""

import copy
import json
import pathlib

import numpy as np

from tinymtl.errors import ArmsFailed
from tinymtl.files import write_text
from tinymtl.report import plots, tables
from tinymtl.runs import baselines
from tinymtl.runs.arms import Arm, execute, thread_limit
from tinymtl.runs.seeds import mean_std
from tinymtl.runs.sweep import read_base
from tinymtl.runs.setup import load_tasks
from tinymtl.train.config import ConfigError, merge, validate
from tinymtl.train.metrics import task_summary
from tinymtl.train.task_kinds import TASK_KINDS

COMPARE_KEYS = ("base", "seeds", "common", "strategies")
THREADS = 1  # BLAS threads per arm and reference (runs.arms: the same bits serial or on Dask)


def load(path, raw):
    """The checked comparison: {name, seeds, strategies: {name: validated run config}}."""
    path = pathlib.Path(path)
    spec = raw["compare"]
    where = f"{path}: compare"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with {', '.join(COMPARE_KEYS)}")
    unknown = sorted(set(spec) - set(COMPARE_KEYS))
    if unknown or set(raw) - {"compare", "name"}:
        key = f"compare.{unknown[0]}" if unknown else sorted(set(raw) - {"compare", "name"})[0]
        raise ConfigError(f"{path}: unknown key {key!r}; a comparison file has name and "
                          f"compare ({', '.join(COMPARE_KEYS)})")
    seeds = spec.get("seeds", 3)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{where}.seeds = {seeds!r}: expected an integer >= 1")
    strategies = spec.get("strategies")
    if not isinstance(strategies, dict) or not strategies:
        raise ConfigError(f"{where}.strategies: expected a mapping of at least one strategy "
                          f"name to its overrides")
    base_path, base = read_base(path, spec, where)
    common = spec.get("common") or {}
    configs = {}
    for name, overrides in strategies.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}.strategies.{name}: expected a mapping of overrides")
        raw_config = merge(merge(base, common), overrides)
        config = validate(raw_config, f"{path}: compare.strategies.{name} (on {base_path})")
        config["name"] = f"{raw.get('name') or path.stem}/{name}"
        configs[str(name)] = config
    return {"name": raw.get("name") or path.stem, "seeds": seeds, "base": str(base_path),
            "strategies": configs}


def delta_m(scores, reference, kinds):
    """Δm% of ``scores`` {task: M_t} against ``reference`` {task: M_t^single}."""
    terms = [TASK_KINDS[kinds[t]].gain(scores[t], reference[t]) / reference[t] for t in scores]
    return 100 * float(np.mean(terms))


def _run_arms(comparison, seeds, out, progress, workers, scheduler, **fixed):
    """Every strategy × seed as the arms of a sweep (``runs.arms.execute``): {strategy: the
    seeds' summaries}. Finished arms are reused, interrupted ones resume."""
    arms = {(name, seed): Arm(f"{name}/seed_{seed}", dict(copy.deepcopy(config), seed=seed,
                                                        **fixed),
                              str(out / name / f"seed_{seed}"))
            for name, config in comparison["strategies"].items() for seed in seeds}
    done, failed = execute(list(arms.values()), workers, scheduler, THREADS, progress)
    if failed:
        raise ArmsFailed(failed, f"the finished arms are in {out}")
    return {name: [done[arms[name, seed].name] for seed in seeds]
            for name in comparison["strategies"]}


def run_comparison(comparison, out_dir=None, progress=True, workers=None, scheduler=None):
    """Train every strategy × seed and the references; returns (and writes) the result.
    ``workers``/``scheduler``: where the arms run (``runs.arms.execute``)."""
    out = pathlib.Path(out_dir or pathlib.Path("runs") / comparison["name"])
    first = next(iter(comparison["strategies"].values()))
    seeds = [first["seed"] + k for k in range(comparison["seeds"])]
    if first["continual"]["stages"]:
        return _run_continual(comparison, seeds, out, progress, workers, scheduler)
    tasks = load_tasks(first)
    kinds = {t: d.kind for t, d in tasks.items()}
    scores = {t: f"test_{TASK_KINDS[k].score}" for t, k in kinds.items()}
    arms = _run_arms(comparison, seeds, out, progress, workers, scheduler, baselines="none")
    references = []
    for k, seed in enumerate(seeds):  # each task alone, on the tokens the strategies fed it
        config = dict(copy.deepcopy(first), seed=seed)
        reference = {}
        for task, data in tasks.items():
            tokens = arms[next(iter(arms))][k]["tasks"][task]["tokens"]
            with thread_limit(THREADS):  # (as the arms: the same bits wherever they ran)
                _, history, counters, test = baselines.single_task(
                    config, task, data, 1, progress=progress, tokens=tokens)
            reference[task] = dict(task_summary(history, task, data.kind, test), **counters)
        references.append(reference)
    result = {"name": comparison["name"], "base": comparison["base"], "seeds": seeds,
              "tasks": kinds, "reference": {}, "strategies": {}}
    for task in tasks:
        result["reference"][task] = mean_std([r[task][scores[task]] for r in references])
    valid = {t: score.replace("test_", "valid_") for t, score in scores.items()}
    for name, summaries in arms.items():
        per_seed = [{t: s["tasks"][t][scores[t]] for t in tasks} for s in summaries]
        entry = {
            "config": comparison["strategies"][name]["training"],
            "tasks": {t: mean_std([p[t] for p in per_seed]) for t in tasks},
            "delta_m": mean_std([delta_m(p, {t: r[t][scores[t]] for t in tasks}, kinds)
                                 for p, r in zip(per_seed, references)]),
            "train_step_ms": mean_std([s["timings"]["train_step_ms"] for s in summaries]),
            "tokens": {t: [s["tasks"][t]["tokens"] for s in summaries] for t in tasks},
        }
        if all(valid[t] in s["tasks"][t] and valid[t] in r[t] for s, r in
               zip(summaries, references) for t in tasks):  # the same on validation
            entry["valid_delta_m"] = mean_std([
                delta_m({t: s["tasks"][t][valid[t]] for t in tasks},
                        {t: r[t][valid[t]] for t in tasks}, kinds)
                for s, r in zip(summaries, references)])
        result["strategies"][name] = entry
    result["chosen_on_valid"] = choose(result["strategies"], "valid_delta_m")
    result["reference_tokens"] = {t: [r[t]["tokens"] for r in references] for t in tasks}
    write_text(out / "comparison.json", json.dumps(result, indent=2))
    write_text(out / "comparison.md", tables.comparison(result) + "\n")
    plots.strategy_comparison(result, out / "comparison.png")
    return result


def choose(strategies, key):
    """The strategy whose mean ``key`` (a validation figure) is highest, or None without
    one: the choice a comparison makes, on validation only (its test figures are reported)."""
    scored = {name: entry[key][0] for name, entry in strategies.items() if key in entry}
    return max(scored, key=scored.get) if len(scored) == len(strategies) and scored else None


CONTINUAL_COLUMNS = ("average_accuracy", "backward_transfer", "forward_transfer",
                     "average_forgetting")


def _run_continual(comparison, seeds, out, progress, workers, scheduler):
    """Every strategy × seed of a continual sequence, summarised by its accuracy matrix."""
    result = {"name": comparison["name"], "base": comparison["base"], "seeds": seeds,
              "continual": True, "strategies": {}}
    arms = _run_arms(comparison, seeds, out, progress, workers, scheduler)
    for name, config in comparison["strategies"].items():
        summaries = arms[name]
        entry = {"config": {k: config["continual"][k] for k in ("method", "scenario")},
                 "wall_seconds": mean_std([s["wall_seconds"] for s in summaries])}
        for column in CONTINUAL_COLUMNS:
            values = [s["continual"][column] for s in summaries]
            entry[column] = None if values[0] is None else mean_std(values)
        if all("valid" in s["continual"] for s in summaries):
            entry["valid_average_accuracy"] = mean_std(
                [s["continual"]["valid"]["average_accuracy"] for s in summaries])
        result["strategies"][name] = entry
    result["chosen_on_valid"] = choose(result["strategies"], "valid_average_accuracy")
    write_text(out / "comparison.json", json.dumps(result, indent=2))
    write_text(out / "comparison.md", tables.comparison(result) + "\n")
    plots.continual_comparison(result, out / "comparison.png")
    return result
