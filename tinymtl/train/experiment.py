"""``run(config)``: one experiment end to end, writing the run directory

    runs/<name>/config.yaml      the resolved config (every default filled in)
    runs/<name>/metrics.jsonl    one JSON object per logged step and per evaluation
    runs/<name>/checkpoint.h5    the final model (periodic ones overwrite it atomically)
    runs/<name>/summary.json     per-task results, baselines, round trip, checkpoint size
    runs/<name>/<task>_curves.png
    runs/<name>/gradient_conflicts.png   with gradient surgery: per-pair conflicts and cosines

With ``resume=True`` the run continues from its checkpoint and ends bitwise identical to an
uninterrupted run with the same config and seed.
"""

import json
import pathlib
import time

import yaml

import tinymtl
from tinymtl.backend import manual_seed, set_device
from tinymtl import datasets
from tinymtl.files import write_text
from tinymtl.mtl import build_model, make_schedule
from tinymtl.mtl.plugin import create
from tinymtl.mtl.weighting import Static
from tinymtl.train import baselines, checkpoint, plots
from tinymtl.train.config import method_spec, same_config
from tinymtl.train.metrics import SCORES, predict_logits, task_summary
from tinymtl.train.trainer import Trainer


def load_tasks(config):
    """The tasks a config trains; for a continual sequence, its stages in order, labelled for
    its scenario (class-incremental: MNIST digits keep their own labels, 0-9)."""
    data, specs = config["data"], config["tasks"]
    continual = config.get("continual") or {}
    if continual.get("stages"):
        global_labels = continual["scenario"] == "class"
        specs = {t: dict(specs[t], global_labels=True) if global_labels else specs[t]
                 for t in continual["stages"]}
    return datasets.load_tasks(specs, data["max_length"], data["seed"], data["cache"])


def shares_one_head(config):
    """Whether every task reads one head: a continual sequence's domain or class scenario."""
    continual = config.get("continual") or {}
    return bool(continual.get("stages")) and continual["scenario"] != "task"


def build(config, tasks, pretrained=True):
    """The multi-task model a config describes, initialised from its seed (and, if
    ``pretrained``, its backbone from ``model.backbone_from``, a checkpoint, when given)."""
    manual_seed(config["seed"])
    model = build_model(config["model"], {t: d.num_outputs for t, d in tasks.items()},
                        input_shape(tasks), config["tasks"], shared_head=shares_one_head(config))
    source = config["model"].get("backbone_from")
    if source and pretrained:
        load_backbone(model, source)
    return model


def load_backbone(model, path):
    """Copy the ``backbone.*`` weights of the checkpoint at ``path`` into ``model``."""
    state = checkpoint.load(path)["model_state"]
    prefix = "backbone."
    backbone = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        model.backbone.load_state_dict(backbone)
    except (KeyError, ValueError) as error:
        message = error.args[0] if error.args else error
        raise checkpoint.CheckpointError(f"{path}: its backbone does not fit this model's "
                                         f"({message})") from None


def export_private(checkpoint_path, out_path, task_names=None):
    """Write the task-private weights (heads, adapters, gates) of ``task_names`` (default: all)
    from a run's checkpoint to a small HDF5 file; returns (tasks written, bytes)."""
    loaded = checkpoint.load(checkpoint_path)
    config, tasks, model = model_from_checkpoint(loaded)
    names = list(task_names or tasks)
    unknown = [t for t in names if t not in tasks]
    if unknown:
        raise KeyError(f"unknown task {unknown[0]!r}; {checkpoint_path} has {', '.join(tasks)}")
    size = checkpoint.save_private(out_path, model.private_state_dict(names), names,
                                   config["model"], source=checkpoint_path)
    return names, size


def load_private(model, path):
    """Load a ``export_private`` file's weights onto ``model`` (its shared backbone stays)."""
    private = checkpoint.load_private(path)
    try:
        model.load_private_state_dict(private["model_state"])
    except ValueError as error:
        raise checkpoint.CheckpointError(f"{path}: {error}") from None
    return private["tasks"]


def input_shape(tasks):
    """One example's shape, which every task of a shared backbone must have in common."""
    shapes = {t: d.x_train.shape[1:] for t, d in tasks.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"tasks with one backbone need one input shape, got {shapes}")
    return next(iter(shapes.values()))


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


def make_callbacks(config):
    return [create("callback", spec) for spec in config["callbacks"]]


def make_trainer(config, tasks, model, metrics_file=None, progress=True):
    training = config["training"]
    schedule = make_schedule(training["schedule"], list(tasks), training["steps"],
                             training["phases"])
    return Trainer(model, tasks, training, schedule, config["seed"], metrics_file=metrics_file,
                   progress=progress, plugins=make_plugins(config),
                   task_lrs={t: spec["lr"] for t, spec in config["tasks"].items()})


def save_checkpoint(path, trainer, config, tasks, elapsed, extra_state=None, extra_arrays=None):
    """The run's checkpoint: model, optimizer, schedule, random states, the trainer's state
    (plus ``extra_state``/``extra_arrays``, e.g. a continual sequence's, in the trainer's) and
    every plugin's."""
    state, arrays = trainer.state()
    state.update(extra_state or {}, elapsed_seconds=elapsed)
    arrays.update(extra_arrays or {})
    return checkpoint.save(
        path, model_state=trainer.model.state_dict(),
        optimizer_state=trainer.optimizer.state_dict(),
        lr_scheduler_state=trainer.lr_scheduler.state_dict(), rng_states=trainer.rng_states(),
        trainer_state=state, trainer_arrays=arrays, plugin_states=trainer.plugin_states(),
        config=config,
        manifests={t: d.manifest for t, d in tasks.items()}, step=trainer.step)


def model_from_checkpoint(loaded):
    """(config, tasks, model) rebuilt from a loaded checkpoint, weights restored."""
    config = loaded["config"]
    tasks = load_tasks(config)
    model = build(config, tasks, pretrained=False)  # every weight comes from the checkpoint
    model.load_state_dict(loaded["model_state"])
    return config, tasks, model


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


def reference_scores(data):
    """What guessing scores: chance accuracy, or the MAE of always predicting the training mean."""
    if data.kind == "regression":
        mean = float(data.y_train.mean())
        return {"baseline_mae": None,
                "mean_predictor_mae": float(abs(data.y_test - mean).mean())}
    return {"num_classes": data.num_classes, "chance_accuracy": 1 / data.num_classes,
            "baseline_accuracy": None}


def compare_to_single_task(result, history, task, kind):
    """The single-task baseline's numbers and the transfer (positive: multi-task is better)."""
    single = task_summary(history, task, kind)
    if kind == "regression":
        return {"baseline_mae": single["test_mae"], "baseline_best_mae": single["best_mae"],
                "transfer": single["test_mae"] - result["test_mae"]}
    return {"baseline_accuracy": single["test_accuracy"],
            "baseline_peak_accuracy": single["peak_accuracy"],
            "transfer": result["test_accuracy"] - single["test_accuracy"]}


BASELINE_NAMES = {"single_task": "single task, same steps",
                  "token_controlled": "single task, same tokens"}


def read_rows(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_rows(path, kept):
    """On resume: rewrite the metrics file with only the rows ``kept(row)`` accepts (those
    written up to the checkpoint; the rest will be written again)."""
    rows = [r for r in read_rows(path) if kept(r)]
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def run(config, out_dir=None, resume=False, progress=True):
    """Run the experiment ``config`` describes; returns its summary (also in summary.json).
    A config with ``continual.stages`` is a sequence of stages (``train.continual``)."""
    if config["continual"]["stages"]:
        from tinymtl.train import continual  # a different protocol, with its own run folder

        return continual.run(config, out_dir, resume=resume, progress=progress)
    started = time.perf_counter()
    out = pathlib.Path(out_dir or pathlib.Path("runs") / config["name"])
    checkpoint_path = out / "checkpoint.h5"
    metrics_path = out / "metrics.jsonl"
    loaded = checkpoint.load(checkpoint_path) if resume else None
    set_device(config["device"])
    tasks = load_tasks(config)  # before anything is written: bad data leaves no run folder
    resolve_epochs(config, tasks)
    if loaded is not None and not same_config(loaded["config"], config):
        raise checkpoint.CheckpointError(
            f"{checkpoint_path}: was written for a different config; resume with the "
            f"same config and seed, or start a fresh run without --resume")
    model = build(config, tasks)  # before writing: a bad backbone_from leaves no run folder
    write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    trainer = make_trainer(config, tasks, model, metrics_path, progress)
    previous_elapsed = 0.0
    if loaded is not None:
        trainer.load_state(loaded)
        previous_elapsed = loaded["trainer_state"].get("elapsed_seconds", 0.0)
        keep_rows(metrics_path, lambda r: r["run"] == "multitask" and r["step"] <= loaded["step"])
    elif metrics_path.exists():
        metrics_path.unlink()

    def elapsed():
        return previous_elapsed + time.perf_counter() - started

    trainer.fit(on_checkpoint=lambda t: save_checkpoint(checkpoint_path, t, config, tasks,
                                                        elapsed()))
    multitask_seconds = elapsed()
    checkpoint_bytes = save_checkpoint(checkpoint_path, trainer, config, tasks, elapsed())

    results = {task: task_summary(trainer.history, task, data.kind) for task, data in tasks.items()}
    steps_per_task = {task: trainer.counters[task]["steps"] for task in tasks}
    baseline_started = time.perf_counter()
    for task, data in tasks.items():
        results[task].update(trainer.counters[task], kind=data.kind, **reference_scores(data))
        if config["baselines"] != "none":
            tokens = (trainer.counters[task]["tokens"]
                      if config["baselines"] == "token_controlled" else None)
            _, history, counters = baselines.single_task(
                config, task, data, steps_per_task[task], metrics_path, progress, tokens=tokens)
            results[task].update(compare_to_single_task(results[task], history, task, data.kind),
                                 baseline=config["baselines"],
                                 baseline_steps=counters["steps"],
                                 baseline_tokens=counters["tokens"])
        if config["linear_baseline"]:
            score = f"test_{SCORES[data.kind]}"
            linear = baselines.linear(data, seed=config["seed"])[score]
            results[task][score.replace("test_", "linear_")] = linear
    baseline_seconds = time.perf_counter() - baseline_started

    rows = read_rows(metrics_path)
    for task, data in tasks.items():
        plots.task_curves(rows, task, out / f"{task}_curves.png", data.kind,
                          baseline=BASELINE_NAMES.get(config["baselines"]))
    for task, weight in trainer.weighting.weights().items():
        results[task]["final_loss_weight"] = weight
    gradients = None
    if trainer.surgery is not None:
        gradients = {"method": trainer.surgery.name, "pairs": trainer.surgery.statistics()}
        plots.gradient_conflicts(gradients["pairs"], out / "gradient_conflicts.png")
    roundtrip_result = roundtrip(model, config, tasks, checkpoint_path)
    summary = {
        "config": config, "seed": config["seed"], "tinymtl_version": tinymtl.__version__,
        "schedule": config["training"]["schedule"],
        "wall_seconds": round(elapsed(), 3),
        "timings": {"multitask_seconds": round(multitask_seconds, 3),
                    "train_step_ms": round(1000 * trainer.train_seconds / max(trainer.step, 1),
                                           3),
                    "baselines_seconds": round(baseline_seconds, 3),
                    "resumed_from_step": None if loaded is None else loaded["step"]},
        "tasks": results,
        "weighting": config["training"]["weighting"]["method"],
        "gradients": gradients,
        "roundtrip": roundtrip_result,
        "checkpoint": {"path": str(checkpoint_path), "bytes": checkpoint_bytes},
        "data": {t: d.manifest for t, d in tasks.items()},
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
