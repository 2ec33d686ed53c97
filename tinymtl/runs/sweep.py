"""Sweeps: a grid of methods × hyperparameters × seeds, each point an ordinary run directory.

Most of the compute of multi-task and continual learning goes into grids: every method, a few
strengths, 3–5 seeds. A sweep file names a base config and what varies:

    name: ewc_strength
    sweep:
      base: permuted_mnist.yaml          # a run config, relative to this file
      seeds: 3                           # the base's seed, +1, +2 (or a list: [0, 1, 2])
      common: {training: {steps: 500}}   # merged into every arm (optional)
      arms:                              # named overrides (optional)
        finetune: {continual: {method: finetune}}
        ewc:
          continual: {method: ewc}
          grid: {continual.ewc_lambda: [100, 1000, 10000]}   # this arm's own grid
      grid: {training.lr: [0.001, 0.0001]}  # every combination, for every arm (optional)
      select: digits                     # the task to choose on (multi-task bases; optional)
      threads: 1                         # BLAS threads per arm (default 1)

or flags on an existing config: ``tinymtl sweep examples/permuted_mnist.yaml --grid
continual.ewc_lambda=100,1000 --seeds 3``. A *variant* is an arm at one grid point (named like
``ewc/ewc_lambda=1000``); each variant runs under every seed into
``<out>/<variant>/seed_<s>/``. The arms run through ``runs.arms.execute``: on Dask (one worker
per core) or serially, bitwise the same either way; finished ones are reused and interrupted
ones resume, so running the same command again continues a sweep.

**Model selection is on validation, never on test.** Each variant's score is the mean over its
seeds of the final model's validation score: a continual run's average accuracy on the
validation splits (ACC), a multi-task run's validation score of ``select`` (default: the mean
over its tasks, which must then be of one kind). The sweep chooses the best variant of each arm
(e.g. EWC's λ) and the best overall, and reports their test figures, measured once at each
run's end. Writes ``sweep.json`` (every run, its figures, the choices), ``sweep.md`` (the
table) and ``sweep.png`` (each variant's seeds and mean ± std, on validation and test).
"""

import itertools
import json
import pathlib
import time

from tinymtl.errors import ArmsFailed
from tinymtl.files import write_text
from tinymtl.report import plots, tables
from tinymtl.runs.arms import Arm, execute
from tinymtl.runs.seeds import mean_std
from tinymtl.runs.setup import load_tasks, run_folder
from tinymtl.train.config import (ConfigError, config_differences, load_yaml, merge,
                                  read_yaml, set_key, validate)
from tinymtl.train.task_kinds import TASK_KINDS

SWEEP_KEYS = ("base", "seeds", "common", "arms", "grid", "select", "threads")
CONTINUAL_EXTRAS = ("backward_transfer", "forward_transfer", "average_forgetting")


def _grid(grid, where):
    """A grid mapping checked: {dotted key: list of at least one value}."""
    if grid is None:
        return {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: expected a mapping of dotted keys to lists of values, "
                          f"e.g. continual.ewc_lambda: [100, 1000]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{key} = {values!r}: expected a list of at least one "
                              f"value")
    return {str(k): v for k, v in grid.items()}


def _point_name(point):
    """'ewc_lambda=1000,lr=0.001' for a grid point (the last part of each key, or the whole
    dotted key where two keys share their last part)."""
    leaves = [key.split(".")[-1] for key in point]
    return ",".join(f"{leaf if leaves.count(leaf) == 1 else key}={value}"
                    for leaf, (key, value) in zip(leaves, point.items()))


def _seeds(value, base_seed, where):
    if isinstance(value, list) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.seeds = {value!r}: expected a count >= 1 or a list of "
                          f"seeds")
    return [base_seed + k for k in range(value)]


def read_base(path, spec, where):
    """(path, raw mapping) of the run config a multi-run file names as ``base`` (relative to
    that file, ``path``), refused in one line if there is none."""
    if not isinstance(spec.get("base"), str):
        raise ConfigError(f"{where}.base: expected the path of a run config")
    base_path = pathlib.Path(path).parent / spec["base"]
    if not base_path.is_file():
        raise ConfigError(f"{where}.base = {spec['base']!r}: no such file {base_path}")
    return base_path, read_yaml(base_path)


def load(path, raw, grid=(), seeds=None, threads=None, select=None):
    """The checked sweep of a sweep file, or of a run config with ``grid`` ("key=v1,v2"
    strings), ``seeds`` (a count), ``threads`` and ``select`` given as flags: {name, base,
    seeds, threads, select, variants: {name: {"arm", "point", "config"}}}."""
    path = pathlib.Path(path)
    if "sweep" in raw:
        if grid or seeds is not None:
            raise ConfigError(f"{path}: a sweep file sets its own grid and seeds; expected no "
                              f"--grid or --seeds")
        spec, where = raw["sweep"], f"{path}: sweep"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping with {', '.join(SWEEP_KEYS)}")
        unknown = sorted(set(spec) - set(SWEEP_KEYS)) or sorted(set(raw) - {"sweep", "name"})
        if unknown:
            raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a sweep file has name and "
                              f"sweep ({', '.join(SWEEP_KEYS)})")
        base_path, base = read_base(path, spec, where)
    else:
        spec, where, base_path, base = {"threads": threads, "select": select}, f"{path}", \
            path, raw
        spec["grid"] = {}
        for item in grid:
            key, sep, text = item.partition("=")
            if not sep or not key or not text:
                raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. "
                                  f"continual.ewc_lambda=100,1000")
            spec["grid"][key] = [load_yaml(v) for v in text.split(",")]
        spec["seeds"] = seeds or 1
    name = raw.get("name") if "sweep" in raw else None
    name = name or path.stem
    threads = spec.get("threads") if spec.get("threads") is not None else 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{where}.threads = {threads!r}: expected an integer >= 1")
    common = spec.get("common") or {}
    arms = spec.get("arms") or {"": {}}
    if not isinstance(arms, dict) or not isinstance(common, dict):
        raise ConfigError(f"{where}: arms and common: expected mappings of overrides")
    shared_grid = _grid(spec.get("grid"), f"{where}.grid")
    variants = {}
    for arm, overrides in arms.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}.arms.{arm}: expected a mapping of overrides")
        overrides = dict(overrides)
        arm_grid = {**_grid(overrides.pop("grid", None), f"{where}.arms.{arm}.grid"),
                    **shared_grid}
        keys = list(arm_grid)
        for values in itertools.product(*(arm_grid[k] for k in keys)):
            point = dict(zip(keys, values))
            variant = "/".join(p for p in (str(arm), _point_name(point)) if p) or name
            raw_config = merge(merge(base, common), overrides)
            for key, value in point.items():
                set_key(raw_config, key, value, f"{where}: {variant}: grid key {key!r}")
            config = validate(raw_config, f"{where}: {variant} (on {base_path})")
            config["name"] = f"{name}/{variant}"
            variants[variant] = {"arm": str(arm), "point": point, "config": config}
    first = next(iter(variants.values()))["config"]
    select = spec.get("select")
    if select is not None and select not in first["tasks"]:
        raise ConfigError(f"{where}.select = {select!r}: expected one of the base's tasks "
                          f"({', '.join(first['tasks'])})")
    return {"name": name, "base": str(base_path), "threads": threads, "select": select,
            "seeds": _seeds(spec.get("seeds", 1), first["seed"], where), "variants": variants}


def arms_of(sweep, out):
    """Every variant × seed as an ``Arm`` into ``<out>/<variant>/seed_<s>``."""
    return [Arm(f"{variant}/seed_{seed}", dict(entry["config"], seed=seed),
                str(out / variant / f"seed_{seed}"))
            for variant, entry in sweep["variants"].items() for seed in sweep["seeds"]]


def check_directory(arms):
    """Refuse a sweep whose run directories hold runs of other configs (a changed sweep file
    into the same folder): one line naming the first and the keys that differ."""
    for arm in arms:
        saved = pathlib.Path(arm.out) / "summary.json"
        if not saved.exists():
            continue
        try:
            config = json.loads(saved.read_text()).get("config", {})
        except ValueError:
            continue
        differ = config_differences(config, arm.config)
        if differ:
            raise ConfigError(f"{arm.out}: holds a run of another config ({', '.join(differ[:3])}"
                              f" differ{'s' if len(differ) == 1 else ''}); remove it or write "
                              f"the sweep elsewhere with --out DIR")


def scorer(config, kinds, select=None):
    """(what is scored, how it is shown, f(summary, split) -> the score, oriented so that
    higher is better). ``kinds``: {task: kind} of the base's tasks (from its data)."""
    if config["continual"]["stages"]:
        def continual(summary, split):
            block = summary["continual"] if split == "test" else summary["continual"].get("valid")
            return None if block is None else block["average_accuracy"]
        return "average accuracy (ACC)", {"label": "ACC %", "scale": 100, "sign": 1,
                                          "decimals": 2}, continual
    tasks = [select] if select else list(kinds)
    if len({kinds[t] for t in tasks}) > 1:
        raise ConfigError(f"sweep: tasks {', '.join(tasks)} are of different kinds; expected "
                          f"select: <task> (or --select) to choose on one of them")

    def multitask(summary, split):
        values = []
        for task in tasks:
            kind = TASK_KINDS[kinds[task]]
            value = summary["tasks"][task].get(f"{split}_{kind.score}")
            if value is None:
                return None
            values.append(value if kind.higher_is_better else -value)
        return sum(values) / len(values)
    kind = TASK_KINDS[kinds[tasks[0]]]
    what = f"{select}'s {kind.description}" if select else \
        f"mean {kind.description} over the tasks"
    display = {"label": kind.label, "scale": kind.scale, "decimals": kind.mean_decimals,
               "sign": 1 if kind.higher_is_better else -1}  # (scores: higher is better)
    return what, display, multitask


def summarise(sweep, kinds, summaries, failed, out):
    """The sweep's result: per variant its seeds' validation and test scores (mean ± std), the
    best variant per arm and overall, chosen on validation."""
    first = next(iter(sweep["variants"].values()))["config"]
    what, display, score = scorer(first, kinds, sweep["select"])
    result = {"name": sweep["name"], "base": sweep["base"], "seeds": sweep["seeds"],
              "threads": sweep["threads"], "scored": what, "display": display,
              "variants": {}, "failed": failed}
    for variant, entry in sweep["variants"].items():
        runs = {}
        for seed in sweep["seeds"]:
            name = f"{variant}/seed_{seed}"
            if name in summaries:
                s = summaries[name]
                runs[str(seed)] = {"dir": str(out / variant / f"seed_{seed}"),
                                   "valid": score(s, "valid"), "test": score(s, "test"),
                                   "wall_seconds": s.get("wall_seconds")}
                if "continual" in s:  # the accuracy matrix's other summaries, on test
                    runs[str(seed)].update({c: s["continual"].get(c) for c in CONTINUAL_EXTRAS})
        row = {"arm": entry["arm"], "point": entry["point"], "runs": runs}
        complete = len(runs) == len(sweep["seeds"])
        for split in ("valid", "test") + (CONTINUAL_EXTRAS if first["continual"]["stages"]
                                          else ()):
            values = [r[split] for r in runs.values()]
            row[split] = mean_std(values) if complete and None not in values else None
        row["wall_seconds"] = mean_std([r["wall_seconds"] for r in runs.values()]) \
            if runs else None
        result["variants"][variant] = row
    scored = {v: row["valid"][0] for v, row in result["variants"].items() if row["valid"]}
    result["chosen_on_valid"] = max(scored, key=scored.get) if scored else None
    result["chosen_per_arm"] = {}
    for arm in dict.fromkeys(row["arm"] for row in result["variants"].values()):
        mine = {v: s for v, s in scored.items() if result["variants"][v]["arm"] == arm}
        result["chosen_per_arm"][arm] = max(mine, key=mine.get) if mine else None
    return result


def run_sweep(sweep, out_dir=None, workers=None, scheduler=None, progress=True):
    """Run every variant × seed (``runs.arms.execute``) and write the sweep's results;
    returns them. Raises Interrupted (Ctrl-C) with how to continue."""
    out = run_folder({"name": sweep["name"]}, out_dir)
    arms = arms_of(sweep, out)
    check_directory(arms)
    first = arms[0].config
    # the data generated (or fetched) into the datasets cache once, not by every worker
    kinds = {task: data.kind for task, data in load_tasks(first).items()}
    scorer(first, kinds, sweep["select"])  # (an unscorable sweep refused before any training)
    started = time.perf_counter()
    index = {"name": sweep["name"], "base": sweep["base"], "seeds": sweep["seeds"],
             "threads": sweep["threads"], "arms": [a.name for a in arms]}
    write_text(out / "sweep_index.json", json.dumps(index, indent=2))
    summaries, failed = execute(arms, workers, scheduler, sweep["threads"], progress)
    result = summarise(sweep, kinds, summaries, failed, out)
    result["wall_seconds"] = round(time.perf_counter() - started, 3)
    write_text(out / "sweep.json", json.dumps(result, indent=2))
    write_text(out / "sweep.md", tables.sweep(result) + "\n")
    plots.sweep(result, out / "sweep.png")
    if failed:
        raise ArmsFailed(failed, f"the results of the others are in {out / 'sweep.md'}")
    return result


__all__ = ["load", "run_sweep"]
