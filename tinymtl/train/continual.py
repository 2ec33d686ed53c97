"""A continual-learning run: tasks trained one after another, every task evaluated after every
stage (the accuracy matrix R, ``continual_metrics``), with a method that resists forgetting
(``mtl.continual``).

    stage i:  train task stages[i] alone (``training.steps`` steps, or ``training.epochs``
              passes over its data), with a fresh optimizer and learning-rate schedule;
              then close the stage (EWC's Fisher and anchor, SI's importance, LwF's teacher),
              evaluate every task → row i of R, and checkpoint.

Scenarios (van de Ven & Tolias 2019; Hsu et al. 2018):
    task     one head per task, and the task id picks it at test time (task-incremental)
    domain   one shared head, labels local to each task (e.g. "first or second digit")
    class    one shared head over every class (split MNIST: the digit itself)

``offline`` is the upper bound: stage i trains tasks 0..i together (mixed batches).

Writes, beside the usual metrics.jsonl and checkpoint.h5: ``accuracy_matrix.json`` (R, b,
ACC, BWT, FWT, forgetting, with their definitions), ``accuracy_matrix.png`` and
``summary.json``. A run stopped anywhere (mid-stage or between stages) resumes bitwise
identically: the checkpoint holds the stage, R so far, and the method's state (Fisher, anchors,
importances, the replay buffer and its counter, the teacher).
"""

import json
import pathlib
import time

import numpy as np
import yaml

import tinymtl
from tinymtl.backend.random import CONTINUAL_STAGE_SEED, default_generator
from tinymtl.files import write_text
from tinymtl.mtl import make_schedule
from tinymtl.mtl.plugin import create, methods
from tinymtl.train import checkpoint, continual_metrics, experiment, plots
from tinymtl.train.config import method_spec, same_config
from tinymtl.train.metrics import evaluate
from tinymtl.train.trainer import Trainer, plugin_name


def load_tasks(config):
    """The sequence's tasks in stage order (``experiment.load_tasks``), checked for its
    scenario: a shared domain head needs every task to have as many classes."""
    tasks = experiment.load_tasks(config)
    if config["continual"]["scenario"] == "domain":
        widths = {d.num_outputs for d in tasks.values()}
        if len(widths) != 1:
            raise ValueError(f"continual.scenario = 'domain' shares one head, so every task "
                             f"needs the same number of classes; got {sorted(widths)}")
    return tasks


def stage_tasks(config, stage):
    """The tasks stage ``stage`` trains: its own, or every one so far (offline)."""
    stages = config["continual"]["stages"]
    method = methods("continual")[config["continual"]["method"]]
    return stages[:stage + 1] if method.trains_every_seen_task else [stages[stage]]


def stage_steps(config, tasks, names):
    training = config["training"]
    if not training["epochs"]:
        return training["steps"]
    examples = sum(len(tasks[t].y_train) for t in names)
    return training["epochs"] * -(-examples // (training["batch_size"] * training["accumulate"]))


def make_method(config, model, tasks):
    """The config's continual method (a plugin), begun on this sequence."""
    def make_teacher(state):
        teacher = experiment.build(config, tasks, pretrained=False)  # weights: ``state``
        teacher.load_state_dict(state)
        teacher.eval()
        return teacher

    method = create("continual", method_spec(config, "continual"))
    method.begin(model, list(tasks), config["seed"], make_teacher)
    return method


def stage_trainer(config, tasks, model, plugins, stage, metrics_file, progress):
    """Stage ``stage``'s trainer, with the sequence's ``plugins`` (its method and callbacks:
    the same objects every stage, so their state carries over)."""
    names = stage_tasks(config, stage)
    steps = stage_steps(config, tasks, names)
    mode = "mixed" if len(names) > 1 else "alternating"
    training = dict(config["training"], eval_every=min(config["training"]["eval_every"], steps))
    return Trainer(model, {t: tasks[t] for t in names}, training,
                   make_schedule(mode, names, steps),
                   config["seed"] + CONTINUAL_STAGE_SEED * (stage + 1),
                   label=f"stage{stage}", metrics_file=metrics_file, progress=progress,
                   plugins=plugins)


def evaluate_all(model, tasks):
    return {t: evaluate(model, t, d.x_test, d.y_test, kind=d.kind)["test_accuracy"]
            for t, d in tasks.items()}


def _save(path, trainer, config, tasks, progress_state, elapsed):
    """The checkpoint, with where the sequence stands (the method's state is a plugin's)."""
    return experiment.save_checkpoint(path, trainer, config, tasks, elapsed,
                                      {"continual": progress_state})


def run(config, out_dir=None, resume=False, progress=True):
    """Train the sequence; returns the summary (also in summary.json)."""
    started = time.perf_counter()
    out = pathlib.Path(out_dir or pathlib.Path("runs") / config["name"])
    checkpoint_path, metrics_path = out / "checkpoint.h5", out / "metrics.jsonl"
    loaded = checkpoint.load(checkpoint_path) if resume else None
    tasks = load_tasks(config)
    if loaded is not None and not same_config(loaded["config"], config):
        raise checkpoint.CheckpointError(
            f"{checkpoint_path}: was written for a different config; resume with the same "
            f"config and seed, or start a fresh run without --resume")
    model = experiment.build(config, tasks)
    write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    method = make_method(config, model, tasks)
    plugins = [method] + experiment.make_callbacks(config)
    stages = config["continual"]["stages"]
    progress_state = {"stage": 0, "stage_done": False, "matrix": [],
                      "initial": None, "previous_elapsed": 0.0}
    if loaded is not None:
        progress_state = dict(loaded["trainer_state"]["continual"])
        progress_state["previous_elapsed"] = loaded["trainer_state"].get("elapsed_seconds", 0.0)
        for plugin in plugins:  # the trainer of a resumed stage restores them again
            saved = loaded["plugin_states"].get(plugin_name(plugin))
            if saved is not None:
                plugin.load_state_dict(saved)
        model.load_state_dict(loaded["model_state"])
        _keep_rows_up_to(metrics_path, progress_state, loaded["step"])
    elif metrics_path.exists():
        metrics_path.unlink()
    if progress_state["initial"] is None:
        progress_state["initial"] = evaluate_all(model, tasks)  # b: at random initialisation

    def elapsed():
        return progress_state["previous_elapsed"] + time.perf_counter() - started

    if loaded is not None and progress_state["stage_done"]:  # resumed between stages
        default_generator.load_state_dict(loaded["rng_states"]["default"])
        progress_state["stage"], loaded = progress_state["stage"] + 1, None
    for stage in range(progress_state["stage"], len(stages)):
        trainer = stage_trainer(config, tasks, model, plugins, stage, metrics_path, progress)
        if loaded is not None:  # resumed mid-stage: the trainer continues where it stopped
            trainer.load_state(loaded)
        progress_state.update(stage=stage, stage_done=False)
        trainer.fit(on_checkpoint=lambda t: _save(checkpoint_path, t, config, tasks,
                                                  progress_state, elapsed()))
        trainer.end_stage(stage, stage_tasks(config, stage))  # EWC's Fisher, LwF's teacher...
        row = evaluate_all(model, tasks)
        progress_state["matrix"].append([row[t] for t in stages])
        with open(metrics_path, "a") as f:
            f.write(json.dumps({"run": "continual", "type": "matrix", "stage": stage,
                                "task": stages[stage], "accuracy": row}) + "\n")
        progress_state.update(stage=stage, stage_done=True)
        _save(checkpoint_path, trainer, config, tasks, progress_state, elapsed())
        progress_state["stage"] = stage + 1
        loaded = None
    return _finish(config, out, tasks, progress_state, elapsed(), checkpoint_path)


def _keep_rows_up_to(metrics_path, progress_state, step):
    """On resume, drop the metrics rows written after the checkpoint (they will be written
    again): training rows of later stages or past ``step`` of its stage, and later matrices."""
    stage = progress_state["stage"]

    def kept(row):
        if row["run"] == "continual":
            return row["stage"] < len(progress_state["matrix"])
        k = int(row["run"][len("stage"):])
        return k < stage or (k == stage and (progress_state["stage_done"] or row["step"] <= step))

    experiment.keep_rows(metrics_path, kept)


def _finish(config, out, tasks, progress_state, wall, checkpoint_path):
    stages = config["continual"]["stages"]
    R = np.array(progress_state["matrix"])
    initial = [progress_state["initial"][t] for t in stages]
    metrics = continual_metrics.summarise(R, initial)
    matrix = {"tasks": stages, "scenario": config["continual"]["scenario"],
              "method": config["continual"]["method"], "matrix": R.tolist(),
              "initial": initial, **metrics}
    write_text(out / "accuracy_matrix.json", json.dumps(matrix, indent=2))
    plots.accuracy_matrix(R, stages, out / "accuracy_matrix.png",
                          f"{config['continual']['method']}, {config['continual']['scenario']}-"
                          f"incremental: ACC {100 * metrics['average_accuracy']:.1f} %")
    peaks = R.max(axis=0)
    summary = {
        "config": config, "seed": config["seed"], "tinymtl_version": tinymtl.__version__,
        "continual": matrix, "wall_seconds": round(wall, 3),
        "tasks": {t: {"kind": "classification", "test_accuracy": float(R[-1, j]),
                      "peak_accuracy": float(peaks[j]),
                      "kept_of_peak": float(R[-1, j] / peaks[j]) if peaks[j] else None}
                  for j, t in enumerate(stages)},
        "checkpoint": {"path": str(checkpoint_path),
                       "bytes": checkpoint_path.stat().st_size},
        "data": {t: d.manifest for t, d in tasks.items()},
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def format_summary(summary):
    """The accuracy matrix and its summaries, as ``tinymtl run`` prints them."""
    result = summary["continual"]
    tasks = result["tasks"]
    width = max(8, *(len(t) + 2 for t in tasks))
    names = ["initial"] + [f"after {t}" for t in tasks]
    label = max(len(n) for n in names) + 1
    lines = [f"{result['method']}, {result['scenario']}-incremental: accuracy % on each task "
             f"(columns) after each stage (rows)",
             " " * label + "".join(f"{t:>{width}}" for t in tasks)]
    for name, row in zip(names, [result["initial"]] + result["matrix"]):
        lines.append(f"{name:<{label}}" + "".join(f"{100 * v:>{width}.1f}" for v in row))

    def show(value):
        return "-" if value is None else f"{100 * value:+.1f}"

    lines.append(f"ACC {100 * result['average_accuracy']:.1f} %   BWT "
                 f"{show(result['backward_transfer'])}   FWT {show(result['forward_transfer'])}"
                 f"   forgetting {show(result['average_forgetting'])} (points; Chaudhry)")
    kept = ", ".join(f"{t} {100 * v['kept_of_peak']:.1f} %" for t, v in summary["tasks"].items()
                     if v["kept_of_peak"] is not None)
    lines.append(f"final accuracy as a share of each task's peak: {kept}; wall "
                 f"{summary['wall_seconds']:.1f} s")
    return "\n".join(lines)
