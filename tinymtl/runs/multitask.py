"""A multi-task run end to end: ``run(config)`` trains every task of the config in one model,
then its baselines, and writes the run directory (``runs.setup``)

    runs/<name>/config.yaml, metrics.jsonl, checkpoint.h5
    runs/<name>/summary.json     per-task results, baselines, round trip, checkpoint size
    runs/<name>/<task>_curves.png
    runs/<name>/gradient_conflicts.png   with gradient surgery: per-pair conflicts and cosines

With ``resume=True`` the run continues from its checkpoint and ends bitwise identical to an
uninterrupted run with the same config and seed.
"""

import time

import numpy as np

from tinymtl.errors import DivergedError
from tinymtl.mtl import make_schedule
from tinymtl.mtl.plugin import create
from tinymtl.mtl.weighting import Static
from tinymtl.report import plots
from tinymtl.runs import baselines
from tinymtl.runs import memory, salience
from tinymtl.runs.setup import (RunDirectory, build, load_tasks, make_callbacks, read_rows,
                                 run_identity)
from tinymtl.train import checkpoint
from tinymtl.train.config import method_spec
from tinymtl.train.metrics import predict_logits, task_summary
from tinymtl.train.progress import phase
from tinymtl.train.task_kinds import TASK_KINDS
from tinymtl.train.trainer import Trainer, plugin_name, run_label


def resolve_epochs(config, tasks):
    """With ``training.epochs``, fix the step count (and per-epoch evaluation) from the data."""
    training = config["training"]
    if not training["epochs"]:
        return config
    (data,) = tasks.values()
    per_update = training["batch_size"] * training["accumulate"]
    steps_per_epoch = -(-len(data.y_train) // per_update)
    training.update(steps=training["epochs"] * steps_per_epoch, eval_every=steps_per_epoch,
                    log_every=min(training["log_every"], steps_per_epoch))
    if training["warmup_steps"] >= training["steps"]:
        raise ValueError(f"training.warmup_steps = {training['warmup_steps']}: expected fewer "
                         f"than the {training['steps']} steps of {training['epochs']} epochs")
    return config


def make_plugins(config):
    """The plugins a multi-task config asks for: its loss weighting (``static``: each task's
    ``loss_weight``), its gradient combination and its ``callbacks``."""
    spec = method_spec(config, "weighting")
    weighting = (Static(weights={t: s["loss_weight"] for t, s in config["tasks"].items()})
                 if spec["method"] == "static" else create("weighting", spec))
    return [weighting, create("gradients", method_spec(config, "gradients"))] + \
        make_callbacks(config)


def make_trainer(config, tasks, model, metrics_file=None, progress=True, callbacks=(),
                 label=None):
    """The trainer of a multi-task config (``callbacks``: more plugin instances; ``label``:
    its rows' and checkpoints' name, by default ``train.trainer.run_label``)."""
    training = config["training"]
    schedule = make_schedule(training["schedule"], list(tasks), training["steps"],
                             training["phases"])
    return Trainer(model, tasks, training, schedule, config["seed"], label,
                   metrics_file=metrics_file, progress=progress,
                   plugins=make_plugins(config) + list(callbacks),
                   task_lrs={t: spec["lr"] for t, spec in config["tasks"].items()})


def roundtrip(model, config, tasks, path):
    """Load the saved checkpoint into a freshly built model; compare weights and test logits."""
    loaded = checkpoint.load(path)
    fresh = build(dict(config, seed=config["seed"] + 1), tasks, pretrained=False)  # other weights
    fresh.load_state_dict(loaded["model_state"])
    ours, theirs = model.state_dict(), fresh.state_dict()
    weights = ours.keys() == theirs.keys() and all(
        ours[k].dtype == theirs[k].dtype and ours[k].tobytes() == theirs[k].tobytes()
        for k in ours)
    outputs = all(predict_logits(model, t, d.x_test).tobytes()
                  == predict_logits(fresh, t, d.x_test).tobytes() for t, d in tasks.items())
    return {"weights_bitwise_equal": bool(weights), "outputs_bitwise_equal": bool(outputs)}


def task_figures(model, task, data, test, out):
    """What a task's kind draws of its test split: the confusion matrix of a classification
    task (<task>_confusion.png); for an alignment task the 2-D projection of its embeddings
    (<task>_embedding.png) coloured by the best-predicted property of its profile (highest
    test R²) and, where the data knows the examples' classes (``test_attributes['class']``,
    e.g. the food graph's), by class; and each property's R² and RMSE (<task>_profile.png)."""
    if data.kind == "classification" and "test_confusion" in test:
        plots.confusion(np.array(test["test_confusion"]), data.classes,
                        f"{task}: test confusion (accuracy {100 * test['test_accuracy']:.1f} %)",
                        out / f"{task}_confusion.png")
    if data.kind == "alignment":
        width = data.y_test.shape[1]
        embeddings = predict_logits(model, task, data.x_test)[:, :-width]
        names = data.manifest.get("profile") or [f"property {k}" for k in range(width)]
        each = test.get("test_profile_per_output")
        best = int(np.nanargmax(np.array(each["r2"], np.float64))) if each else 0
        colourings = [(data.y_test[:, best], f"{names[best]} (standardised)", None)]
        if "class" in data.test_attributes:
            colourings.insert(0, (data.test_attributes["class"], "class",
                                  data.facts.get("classes")))
        rho = test["test_distance_spearman"]
        plots.embedding_projection(embeddings, colourings,
                                   f"{task}: test embeddings, distance ρ "
                                   f"{'-' if rho is None else f'{rho:.3f}'}",
                                   out / f"{task}_embedding.png")
        if each:
            plots.profile_scores(names, each["r2"], each["rmse"],
                                 f"{task}: the predicted profile on test "
                                 f"(mean R² {test['test_profile_r2']:.3f})",
                                 out / f"{task}_profile.png")


def callback_reports(trainer):
    """{plugin: what it reports} of the plugins that report (early stopping: the step it
    stopped at and the best step; the best checkpoint: its step and value)."""
    reports = {plugin_name(p): p.report() for p in trainer.plugins}
    return {name: report for name, report in reports.items() if report is not None}


def reference_scores(data):
    """What guessing scores: chance accuracy (classification), the MAE of always predicting
    the training mean (regression), the recall@1 of a random ranking (embedding: the chance
    that another example shares the query's label); with the single-task baseline's slot."""
    baseline = {f"baseline_{TASK_KINDS[data.kind].score}": None}
    if data.kind == "regression":
        mean = data.y_train.mean(0)  # (per target)
        return {"baseline_mae": None,
                "mean_predictor_mae": float(abs(data.y_test - mean).mean())}
    if data.kind == "multilabel":
        return {"num_labels": data.num_classes, **baseline}
    if data.kind == "embedding":
        counts = np.bincount(data.y_test).astype(np.float64)
        n = counts.sum()
        return {"num_classes": data.num_classes,
                "chance_recall_at_1": float((counts * (counts - 1)).sum() / (n * (n - 1))),
                **baseline}
    if data.kind == "alignment":  # unrelated embeddings: ρ 0, a random nearest neighbour
        return {"chance_distance_spearman": 0.0,
                "chance_neighbour_recall_at_1": 1 / max(len(data.y_test) - 1, 1), **baseline}
    return {"num_classes": data.num_classes, "chance_accuracy": 1 / data.num_classes,
            **baseline}


def compare_to_single_task(result, history, task, kind, test=None):
    """The single-task baseline's numbers and the transfer (positive: multi-task is better):
    baseline_<score>, baseline_<best> (e.g. baseline_peak_accuracy) and transfer, on test."""
    kind = TASK_KINDS[kind]
    single = task_summary(history, task, kind.name, test)
    test = f"test_{kind.score}"
    return {f"baseline_{kind.score}": single[test], f"baseline_{kind.best}": single[kind.best],
            "transfer": kind.gain(result[test], single[test])}


BASELINE_NAMES = {"single_task": "single task, same steps",
                  "token_controlled": "single task, same tokens"}


def run(config, out_dir=None, resume=False, progress=True, callbacks=()):
    """Run the multi-task experiment ``config`` describes (``callbacks``: more plugins, beside
    the config's own); returns its summary (also in summary.json)."""
    directory = RunDirectory(config, out_dir, resume)
    loaded = directory.loaded
    phase(f"loading the data of {', '.join(config['tasks'])} (generated once, then read from "
          f"the datasets cache)", progress)
    tasks = load_tasks(config)  # before anything is written: bad data leaves no run folder
    salience.check(config, tasks)
    resolve_epochs(config, tasks)
    directory.check_resume()
    model = build(config, tasks)  # before writing: a bad backbone_from leaves no run folder
    memory.check_step(config, model, tasks)
    baseline_steps = directory.baseline_steps(tasks)  # (fresh: none, their folder cleared)
    # a resumed run keeps the label it was written under (single-task runs were "multitask")
    label = run_label(tasks) if loaded is None else loaded.get("label", run_label(tasks))
    directory.begin(kept=lambda r: (r["run"] == label and r["step"] <= loaded["step"]) or (
        r["run"] in baseline_steps and r["type"] != "stopped"
        and r["step"] <= baseline_steps[r["run"]]))
    trainer = make_trainer(config, tasks, model, directory.metrics_path, progress, callbacks,
                           label)
    trainer.checkpointer = directory.checkpointer(tasks)
    if loaded is not None:
        trainer.load_state(loaded)
    try:
        trainer.fit(on_checkpoint=lambda t: directory.save(t, tasks))
    except DivergedError as error:
        directory.diverged(error)
    if trainer.should_stop and not trainer.stop_final:  # paused (time budget): resumable
        return directory.paused(trainer, tasks)
    multitask_seconds = directory.elapsed()
    checkpoint_bytes = directory.save(trainer, tasks)

    phase("evaluating on the test split (once, at the end)", progress)
    tested = loaded is not None and any(  # resumed in its baselines: the test row is there
        r["run"] == label and r["type"] == "test" for r in read_rows(directory.metrics_path))
    test = trainer.test(record=not tested)  # once, at the end: reported, never chosen on
    results = {task: task_summary(trainer.history, task, data.kind, test)
               for task, data in tasks.items()}
    steps_per_task = {task: trainer.counters[task]["steps"] for task in tasks}
    baseline_started = time.perf_counter()
    for task, data in tasks.items():
        results[task].update(trainer.counters[task], kind=data.kind, **reference_scores(data))
        if config["baselines"] != "none":
            phase(f"baseline: {task} alone ({BASELINE_NAMES[config['baselines']]})", progress)
            tokens = (trainer.counters[task]["tokens"]
                      if config["baselines"] == "token_controlled" else None)
            _, history, counters, single_test = baselines.single_task(
                config, task, data, steps_per_task[task], directory.metrics_path, progress,
                tokens=tokens, checkpoint_path=directory.baseline_checkpoint(task),
                run_tasks=tasks)
            results[task].update(compare_to_single_task(results[task], history, task, data.kind,
                                                        single_test),
                                 baseline=config["baselines"],
                                 baseline_steps=counters["steps"],
                                 baseline_tokens=counters["tokens"])
        if config["linear_baseline"]:
            score = f"test_{TASK_KINDS[data.kind].score}"
            linear = baselines.linear(data, steps=config["linear_baseline_steps"],
                                      seed=config["seed"])[score]
            results[task][score.replace("test_", "linear_")] = linear
    baseline_seconds = time.perf_counter() - baseline_started

    rows = read_rows(directory.metrics_path)
    for task, data in tasks.items():
        plots.task_curves(rows, task, directory.out / f"{task}_curves.png", data.kind,
                          baseline=BASELINE_NAMES.get(config["baselines"]),
                          unit="characters" if data.text_train else "examples")
        task_figures(model, task, data, test["tasks"][task], directory.out)
    for task, weight in trainer.weighting.weights().items():
        results[task]["final_loss_weight"] = weight
    gradients = None
    if trainer.surgery is not None:
        gradients = {"method": trainer.surgery.name, "pairs": trainer.surgery.statistics()}
        plots.gradient_conflicts(gradients["pairs"], directory.out / "gradient_conflicts.png")
    salient = config["salience"]["task"]
    atoms = None if salient is None else salience.analyse(
        model, salient, tasks[salient], directory.out, config["seed"], config["salience"]["draw"])
    phase("checking the checkpoint's round trip (weights and outputs, bit for bit)", progress)
    roundtrip_result = roundtrip(model, config, tasks, directory.checkpoint_path)
    return directory.finish({
        **run_identity(config),
        "schedule": config["training"]["schedule"],
        "wall_seconds": round(directory.elapsed(), 3),
        "timings": {"multitask_seconds": round(multitask_seconds, 3),
                    "train_step_ms": round(1000 * trainer.train_seconds / max(trainer.step, 1),
                                           3),
                    "baselines_seconds": round(baseline_seconds, 3),
                    "resumed_from_step": None if loaded is None else loaded["step"],
                    # (wall_seconds counts the run before its resume too: this much of it)
                    "seconds_before_resume": round(directory.previous_elapsed, 3)},
        "tasks": results,
        "weighting": config["training"]["weighting"]["method"],
        "gradients": gradients,
        "salience": atoms,
        "roundtrip": roundtrip_result,
        "checkpoint": {"path": str(directory.checkpoint_path), "bytes": checkpoint_bytes},
        "stopped": trainer.stop_reason,
        "callbacks": callback_reports(trainer),
        "data": {t: d.manifest for t, d in tasks.items()},
    })
