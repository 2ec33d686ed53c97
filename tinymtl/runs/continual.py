"""A continual-learning run: tasks trained one after another, every task evaluated after every
stage (the accuracy matrix R, ``continual_metrics``), with a method that resists forgetting
(``mtl.continual``).

    stage i:  train task stages[i] alone (``training.steps`` steps, or ``training.epochs``
              passes over its data), with a fresh optimizer and learning-rate schedule;
              then close the stage (EWC's Fisher and anchor, SI's importance, LwF's teacher),
              evaluate every task → row i of R, and checkpoint.

``continual.reset_optimizer: false`` carries the optimizer's state (Adam's moments m, v and
its step count) from one stage into the next, as a script that keeps one optimizer for the
whole sequence does (van de Ven & Tolias' code, whose default this is); the learning rate and
its schedule still start afresh. It matters: Adam's first steps on a new task, with v ≈ 0,
move every weight by about the learning rate whatever its gradient's size, while the carried v
keeps the updates of weights that earlier tasks found sensitive small (permuted MNIST,
fine-tuning, 4 tasks of 5,000 steps, seed 0: task 1 ends at 77.4 % with a fresh Adam per
task, 88.6 % with its state carried; docs/continual.md).

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

import numpy as np

from tinymtl.backend.random import CONTINUAL_STAGE_SEED, default_generator
from tinymtl.errors import DivergedError
from tinymtl.files import write_text
from tinymtl.mtl import make_schedule
from tinymtl.mtl.plugin import create, methods
from tinymtl.report import plots
from tinymtl.runs import memory, setup
from tinymtl.runs.setup import RunDirectory, make_callbacks, run_identity
from tinymtl.train import continual_metrics
from tinymtl.train.config import method_spec
from tinymtl.train.metrics import evaluate
from tinymtl.train.trainer import Trainer, plugin_name


def load_tasks(config):
    """The sequence's tasks in stage order (``setup.load_tasks``), checked for its scenario: a
    shared domain head needs every task to have as many classes."""
    tasks = setup.load_tasks(config)
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
        teacher = setup.build(config, tasks, pretrained=False)  # weights: ``state``
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


def carry_optimizer_state(optimizer, state):
    """Give ``optimizer`` (a new stage's) the per-parameter state of the last stage's (its
    ``state_dict()["state"]``: the same model, so the same parameters in the same order),
    keeping its own hyper-parameters: the new stage's learning rate and schedule."""
    own = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": own["param_groups"]})


def evaluate_all(model, tasks, split="test"):
    """Every task's accuracy on ``split`` ('valid': its validation split, or its test split
    when it has none)."""
    scores = {}
    for task, data in tasks.items():
        own = data.eval_split if split == "valid" else "test"
        x, y = data.split(own)
        scores[task] = evaluate(model, task, x, y, kind=data.kind, split=own)[f"{own}_accuracy"]
    return scores


def run(config, out_dir=None, resume=False, progress=True, callbacks=()):
    """Train the sequence (``callbacks``: more plugins, beside the config's own); returns the
    summary (also in summary.json)."""
    directory = RunDirectory(config, out_dir, resume)
    loaded = directory.loaded
    tasks = load_tasks(config)
    directory.check_resume()
    model = setup.build(config, tasks)
    memory.check_step(config, model, tasks)
    method = make_method(config, model, tasks)
    plugins = [method] + make_callbacks(config) + list(callbacks)
    stages = config["continual"]["stages"]
    progress_state = {"stage": 0, "stage_done": False, "matrix": [], "initial": None,
                      "valid_matrix": [], "initial_valid": None}
    if loaded is not None:
        progress_state = dict(loaded["trainer_state"]["continual"])
        progress_state.pop("previous_elapsed", None)  # format 1 kept it here too
        if "valid_matrix" not in progress_state:  # before validation splits: valid is test
            progress_state.update(valid_matrix=[list(r) for r in progress_state["matrix"]],
                                  initial_valid=progress_state["initial"])
        if progress_state["stage_done"]:  # (mid-stage, the stage's trainer restores them)
            for plugin in plugins:
                saved = loaded["plugin_states"].get(plugin_name(plugin))
                if saved is not None:
                    plugin.load_state_dict(saved)
        model.load_state_dict(loaded["model_state"])
    directory.begin(kept=None if loaded is None else
                    _rows_up_to(progress_state, loaded["step"]))
    if progress_state["initial"] is None:  # b: at random initialisation
        progress_state["initial"] = evaluate_all(model, tasks)
        progress_state["initial_valid"] = evaluate_all(model, tasks, "valid")

    def save(trainer):
        return directory.save(trainer, tasks, {"continual": progress_state})

    carry = not config["continual"]["reset_optimizer"]
    carried = None  # the optimizer state a stage hands the next, when ``carry``
    if loaded is not None and progress_state["stage_done"]:  # resumed between stages
        default_generator.load_state_dict(loaded["rng_states"]["default"])
        carried = loaded["optimizer_state"]["state"] if carry else None
        progress_state["stage"], loaded = progress_state["stage"] + 1, None
    for stage in range(progress_state["stage"], len(stages)):
        trainer = stage_trainer(config, tasks, model, plugins, stage, directory.metrics_path,
                                progress)
        trainer.checkpointer = directory.checkpointer(tasks, {"continual": progress_state})
        if loaded is not None:  # resumed mid-stage: the trainer continues where it stopped
            trainer.load_state(loaded)
        elif carried is not None:
            carry_optimizer_state(trainer.optimizer, carried)
        progress_state.update(stage=stage, stage_done=False)
        try:
            trainer.fit(on_checkpoint=save)
        except DivergedError as error:
            directory.diverged(error)
        if trainer.should_stop and not trainer.stop_final:  # paused mid-stage (time budget)
            return directory.paused(trainer, tasks, {"continual": progress_state})
        trainer.end_stage(stage, stage_tasks(config, stage))  # EWC's Fisher, LwF's teacher...
        row, valid = evaluate_all(model, tasks), evaluate_all(model, tasks, "valid")
        progress_state["matrix"].append([row[t] for t in stages])
        progress_state["valid_matrix"].append([valid[t] for t in stages])
        with open(directory.metrics_path, "a") as f:
            f.write(json.dumps({"run": "continual", "type": "matrix", "stage": stage,
                                "task": stages[stage], "accuracy": row,
                                "valid_accuracy": valid}) + "\n")
        progress_state.update(stage=stage, stage_done=True)
        save(trainer)
        progress_state["stage"] = stage + 1
        loaded = None
        carried = trainer.optimizer.state_dict()["state"] if carry else None
    return directory.finish(_summary(config, directory, tasks, progress_state))


def _rows_up_to(progress_state, step):
    """On resume, which metrics rows to keep (the rest will be written again): not training
    rows of later stages or past ``step`` of its stage, nor later matrices."""
    stage = progress_state["stage"]

    def kept(row):
        if row["run"] == "continual":
            return row["stage"] < len(progress_state["matrix"])
        k = int(row["run"][len("stage"):])
        return k < stage or (k == stage and (progress_state["stage_done"] or row["step"] <= step))

    return kept


def _summary(config, directory, tasks, progress_state):
    """The accuracy matrix and its metrics (written as JSON and PNG too), and the summary."""
    out, stages = directory.out, config["continual"]["stages"]
    R, V = np.array(progress_state["matrix"]), np.array(progress_state["valid_matrix"])
    initial = [progress_state["initial"][t] for t in stages]
    initial_valid = [progress_state["initial_valid"][t] for t in stages]
    metrics = continual_metrics.summarise(R, initial)
    matrix = {"tasks": stages, "scenario": config["continual"]["scenario"],
              "method": config["continual"]["method"], "matrix": R.tolist(),
              "initial": initial, **metrics,
              "valid": dict(matrix=V.tolist(), initial=initial_valid,
                            **continual_metrics.summarise(V, initial_valid))}
    write_text(out / "accuracy_matrix.json", json.dumps(matrix, indent=2))
    plots.accuracy_matrix(R, stages, out / "accuracy_matrix.png",
                          f"{config['continual']['method']}, {config['continual']['scenario']}-"
                          f"incremental: ACC {100 * metrics['average_accuracy']:.1f} %")
    # a task's peak: its test accuracy after the stage where its validation accuracy was best
    # (the choice made on validation, the value reported on test)
    peaks = R[V.argmax(axis=0), np.arange(len(stages))]
    return {
        **run_identity(config),
        "continual": matrix, "wall_seconds": round(directory.elapsed(), 3),
        "tasks": {t: {"kind": "classification", "test_accuracy": float(R[-1, j]),
                      "valid_accuracy": float(V[-1, j]),
                      "peak_accuracy": float(peaks[j]), "peak_stage": int(V[:, j].argmax()),
                      "kept_of_peak": float(R[-1, j] / peaks[j]) if peaks[j] else None}
                  for j, t in enumerate(stages)},
        "checkpoint": {"path": str(directory.checkpoint_path),
                       "bytes": directory.checkpoint_path.stat().st_size},
        "data": {t: d.manifest for t, d in tasks.items()},
    }
