"""What every kind of run shares: its folder and life cycle (``RunDirectory``), its tasks, its
model, and its checkpoints.

    runs/<name>/config.yaml      the resolved config (every default filled in)
    runs/<name>/metrics.jsonl    one JSON object per logged step and per evaluation
    runs/<name>/checkpoint.h5    the latest checkpoint (written atomically; docs/checkpoint-format.md)
    runs/<name>/summary.json     the run's results

A multi-task run (``runs.multitask``), a continual sequence (``runs.continual``), their
baselines, seeds, comparisons and diagnostics all start and end the same way: the checkpoint
is read (to resume) and the device set before anything is built; the tasks are loaded and the
model built before anything is written (bad data or a bad ``backbone_from`` leave no run
folder); the config is written; the metrics file is cleared, or on resume trimmed to the rows
written up to the checkpoint; time counts on across a resume.
"""

import json
import os
import pathlib
import shutil
import sys
import time

import numpy as np
import yaml

import tinymtl
from tinymtl import datasets
from tinymtl.datasets.cache import location as cache_location
from tinymtl.backend import manual_seed, set_device
from tinymtl.backend.blas import blas_kernels, blas_threads
from tinymtl.backend.simd import numpy_simd
from tinymtl.errors import one_line
from tinymtl.files import write_text
from tinymtl.mtl import build_model
from tinymtl.mtl.model import graph_options
from tinymtl.mtl.plugin import create
from tinymtl.runs import memory
from tinymtl.train import checkpoint
from tinymtl.train.config import config_differences, same_config


def run_folder(config, out_dir=None):
    """Where a run writes: ``out_dir``, or runs/<config name>."""
    return pathlib.Path(out_dir or pathlib.Path("runs") / config["name"])


def run_identity(config):
    """What every run's summary opens with: its config and seed, and what else decides its
    bits: the tinymtl version, the BLAS's kernels and threads (``backend.blas``) and the level
    of NumPy's SIMD loops (``backend.simd``)."""
    return {"config": config, "seed": config["seed"], "tinymtl_version": tinymtl.__version__,
            "blas": blas_kernels(), "blas_threads": blas_threads(), "numpy_simd": numpy_simd()}


def finished_summary(out, config, weights_needed=True):
    """The summary of a finished run of ``config`` in ``out`` (what ``--resume`` of a complete
    run reports instead of training again), or None: a summary that says the run is complete,
    written after its checkpoint (a pretraining run's too: ``runs.pretrain.first_stage``). A
    run with a pretraining stage is finished when its fine-tuning, from that stage's
    checkpoint, is. ``weights_needed=False`` (a sweep's arms, whose results are their
    summaries): a finished run whose checkpoint was deleted to save space still counts."""
    path, saved_weights = pathlib.Path(out) / "summary.json", pathlib.Path(out) / "checkpoint.h5"
    if not path.exists():
        return None
    if saved_weights.exists():
        if saved_weights.stat().st_mtime_ns > path.stat().st_mtime_ns:
            return None  # (a checkpoint newer than the summary: put back to continue from it)
    elif weights_needed:
        return None
    try:
        summary = json.loads(path.read_text())
    except ValueError:
        return None
    if summary.get("complete") is False or "diverged" in summary or "config" not in summary:
        return None
    saved = summary["config"]
    if config["model"].get("pretrain"):  # compared as the stage left it: the run fine-tuned
        config = dict(config, model=dict(config["model"], pretrain=None, backbone_from=(
            saved.get("model") or {}).get("backbone_from")))
    return summary if same_config(saved, config) else None


class RunDirectory:
    """One run's folder (``out_dir``, default runs/<config name>) and its life cycle:
    ``RunDirectory(config, out_dir, resume)`` removes what a save killed half-way left (the
    temporary files of ``files.atomic_write``), reads the checkpoint to resume from (none yet:
    a fresh run, with a note on stderr) and sets the device; ``check_resume()`` refuses a
    checkpoint of another config; ``begin(kept)`` writes the config and clears the metrics
    (or keeps the rows ``kept(row)`` accepts, on resume);
    ``save(trainer, tasks)`` checkpoints; ``elapsed()`` counts on across resumes;
    ``finish(summary)`` writes summary.json."""

    def __init__(self, config, out_dir=None, resume=False):
        self.started = time.perf_counter()
        self.config = config
        self.out = run_folder(config, out_dir)
        self.checkpoint_path = self.out / "checkpoint.h5"
        self.metrics_path = self.out / "metrics.jsonl"
        for leftover in self.out.glob(".*.tmp"):  # a save killed half-way (files.atomic_write)
            leftover.unlink()
        if resume and not self.checkpoint_path.exists():
            print(f"note: {self.checkpoint_path} does not exist yet; starting a fresh run",
                  file=sys.stderr)
            resume = False
        self.loaded = checkpoint.load(self.checkpoint_path) if resume else None
        if self.loaded is not None and self.loaded["format_version"] < 3 and \
                not self.loaded["config"]["data"]["valid_fraction"]:
            # written before validation splits: it trained on all its training data, and
            # resumes so (its evaluations stay on test, as they were)
            config["data"]["valid_fraction"] = 0.0
            print(f"note: {self.checkpoint_path} was written before validation splits; the "
                  f"run resumes without one (data.valid_fraction = 0)", file=sys.stderr)
        self.previous_elapsed = 0.0 if self.loaded is None else \
            self.loaded["trainer_state"].get("elapsed_seconds", 0.0)
        set_device(config["device"])

    def check_resume(self):
        """A checkpoint written for another config cannot be resumed with this one."""
        if self.loaded is not None and not same_config(self.loaded["config"], self.config):
            keys = config_differences(self.loaded["config"], self.config)
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            raise checkpoint.CheckpointError(
                f"{self.checkpoint_path}: was written for a different config ({shown} "
                f"differ{'s' if len(keys) == 1 else ''}); resume with the same config and "
                f"seed, or start a fresh run without --resume")

    def begin(self, kept=None):
        """Write config.yaml; clear the metrics file, or on resume keep its rows ``kept``."""
        write_text(self.out / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
        if self.loaded is not None:
            keep_rows(self.metrics_path, kept)
        elif self.metrics_path.exists():
            self.metrics_path.unlink()

    def baseline_checkpoint(self, task):
        """Where the single-task baseline of ``task`` is checkpointed (``baselines/``)."""
        return self.out / "baselines" / f"{task}.h5"

    def baseline_steps(self, tasks):
        """{'baseline:<task>': the step of its checkpoint} of the baselines a resumed run goes
        on from; a fresh run removes any left in the folder (they were another run's)."""
        if self.loaded is None:
            shutil.rmtree(self.out / "baselines", ignore_errors=True)
            return {}
        return {f"baseline:{task}": checkpoint.load(self.baseline_checkpoint(task))["step"]
                for task in tasks if self.baseline_checkpoint(task).exists()}

    def elapsed(self):
        """Seconds of this run so far, the time before a resume included."""
        return self.previous_elapsed + time.perf_counter() - self.started

    def save(self, trainer, tasks, extra_state=None, name=None):
        """Checkpoint the trainer (``save_checkpoint``) to checkpoint.h5, or to ``name`` in the
        run directory (best.h5); returns the file's size. With ``training.keep_checkpoints``
        = K > 1, checkpoint.h5 is also kept as checkpoints/<label>_step_<N>.h5 (label:
        multitask, or a continual run's stage<i>), the last K written."""
        path = self.checkpoint_path if name is None else self.out / name
        size = save_checkpoint(path, trainer, self.config, tasks, self.elapsed(), extra_state)
        if name is None:
            self.keep(trainer.label, trainer.step, self.config["training"]["keep_checkpoints"])
        return size

    def keep(self, label, step, keep):
        """With ``keep`` = K > 1, checkpoint.h5 just written is also kept as
        checkpoints/<label>_step_<N>.h5, the last K written."""
        if keep <= 1:
            return
        kept = self.out / "checkpoints"
        kept.mkdir(exist_ok=True)
        copy = kept / f"{label}_step_{step:09d}.h5"
        copy.unlink(missing_ok=True)
        try:
            os.link(self.checkpoint_path, copy)  # the same file under a second name: no copy
        except OSError:  # a file system without hard links
            shutil.copy2(self.checkpoint_path, copy)
        for old in kept_checkpoints(self.out)[:-keep]:
            old.unlink()

    def checkpointer(self, tasks, extra_state=None):
        """What a trainer calls to write a named checkpoint (``Trainer.save_checkpoint``)."""
        return lambda trainer, name: self.save(trainer, tasks, extra_state, name)

    def finish(self, summary):
        write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary

    def paused(self, trainer, tasks, extra_state=None):
        """A run paused by its time budget: checkpointed where it stopped, summary.json says
        so and how to go on (``complete``: false); no test evaluation yet (that is once, at
        the end)."""
        self.save(trainer, tasks, extra_state)
        command = f"tinymtl run {self.out / 'config.yaml'} --out {self.out} --resume"
        return self.finish({"config": self.config, "seed": self.config["seed"],
                            "complete": False, "stopped": trainer.stop_reason,
                            "step": trainer.step, "wall_seconds": round(self.elapsed(), 3),
                            "resume": command,
                            "checkpoint": {"path": str(self.checkpoint_path)}})

    def diverged(self, error):
        """A run stopped on a non-finite value: summary.json says where and why (the metrics
        file has the row), then the error goes on to the caller (one line, exit 1)."""
        self.finish({"config": self.config, "seed": self.config["seed"],
                     "wall_seconds": round(self.elapsed(), 3), "diverged": error.event,
                     "checkpoint": {"path": str(self.checkpoint_path),
                                    "exists": self.checkpoint_path.exists()}})
        raise error


def kept_checkpoints(out):
    """The checkpoints ``training.keep_checkpoints`` kept in run directory ``out``, in the
    order they were written."""
    return sorted((out / "checkpoints").glob("*_step_*.h5"), key=lambda p: p.stat().st_mtime_ns)


def save_checkpoint(path, trainer, config, tasks, elapsed, extra_state=None):
    """The run's checkpoint: model, optimizer, schedule, random states, the trainer's state
    (plus ``extra_state``, e.g. where a continual sequence stands) and every plugin's."""
    state = dict(trainer.state_dict(), **(extra_state or {}), elapsed_seconds=elapsed)
    return checkpoint.save(
        path, model_state=trainer.model.state_dict(),
        optimizer_state=trainer.optimizer.state_dict(),
        lr_scheduler_state=trainer.lr_scheduler.state_dict(), rng_states=trainer.rng_states(),
        trainer_state=state, plugin_states=trainer.plugin_states(),
        config=config, manifests={t: d.manifest for t, d in tasks.items()}, step=trainer.step)


def task_specs(config):
    """The task specs a config trains; for a continual sequence, its stages in order, labelled
    for its scenario (class-incremental: MNIST digits keep their own labels, 0-9)."""
    specs = config["tasks"]
    continual = config.get("continual") or {}
    if continual.get("stages"):
        global_labels = continual["scenario"] == "class"
        specs = {t: dict(specs[t], global_labels=True) if global_labels else specs[t]
                 for t in continual["stages"]}
    return specs


def check_memory_plan(config):
    """``memory.check_plan`` of a config's tasks: its estimate before any array is made or any
    model built, refused in one line when it cannot fit."""
    return memory.check_plan(config, task_specs(config), shares_one_head(config))


def load_tasks(config):
    """The tasks a config trains (``task_specs``), once its memory estimate fits
    (``check_memory_plan``: before any array is made)."""
    data, specs = config["data"], task_specs(config)
    check_memory_plan(config)
    with cache_location(data.get("cache_dir")):
        return datasets.load_tasks(specs, data["max_length"], data["seed"], data["cache"],
                                   data["valid_fraction"], molecule_encoder=molecule_encoder)


def shares_one_head(config):
    """Whether every task reads one head: a continual sequence's domain or class scenario."""
    continual = config.get("continual") or {}
    return bool(continual.get("stages")) and continual["scenario"] != "task"


def build(config, tasks, pretrained=True):
    """The multi-task model a config describes, initialised from its seed (and, if
    ``pretrained``, its backbone from ``model.backbone_from``, a checkpoint, when given)."""
    manual_seed(config["seed"])
    model = build_model(config["model"], {t: d.num_outputs for t, d in tasks.items()},
                        input_shape(tasks), config["tasks"], shared_head=shares_one_head(config),
                        **graph_options(config["model"], next(iter(tasks.values())).x_train))
    source = config["model"].get("backbone_from")
    if source and pretrained:
        load_backbone(model.backbone, checkpoint.load(source))
    return model


def load_backbone(backbone, loaded):
    """Copy the ``backbone.*`` weights of a loaded checkpoint into the module ``backbone``."""
    prefix = "backbone."
    state = {k[len(prefix):]: v for k, v in loaded["model_state"].items()
             if k.startswith(prefix)}
    try:
        backbone.load_state_dict(state)
    except (KeyError, ValueError) as error:
        message = error.args[0] if error.args else error
        raise checkpoint.CheckpointError(f"{loaded['path']}: its backbone does not fit this "
                                         f"model's ({message})") from None


def molecule_encoder(path):
    """The encoder of a molecule pretraining's checkpoint (``tinymtl pretrain
    examples/molecules_pretrain.yaml``) as a function: a list of SMILES -> (n, D) float32
    vectors, each molecule's pooled embedding (no gradient, evaluation mode). What the food
    graph's ``compound_features: <checkpoint>`` uses to describe its compounds."""
    from tinymtl.autograd import no_grad
    from tinymtl.datasets import molecules
    from tinymtl.mtl.model import build_backbone
    from tinymtl.train.config import is_pretraining

    loaded = checkpoint.load(path)
    config = loaded["config"]
    if not is_pretraining(config) or config["data"]["source"] != "molecules":
        raise checkpoint.CheckpointError(f"{path}: not a molecule pretraining's checkpoint; "
                                         f"expected one of `tinymtl pretrain` with data.source "
                                         f"molecules")

    def encode(smiles, batch=256):
        graphs = molecules.graphs_from_smiles(smiles)
        backbone = build_backbone(config["model"], graphs.shape[1:],
                                  **graph_options(config["model"], graphs, path))
        load_backbone(backbone, loaded)
        backbone.eval()
        with no_grad():
            return np.concatenate([backbone(graphs[k:k + batch].collate()).numpy()
                                   for k in range(0, len(graphs), batch)]).astype(np.float32)

    return encode


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


def model_from_checkpoint(loaded):
    """(config, tasks, model) rebuilt from a loaded checkpoint, weights restored."""
    config = loaded["config"]
    tasks = load_tasks(config)
    model = build(config, tasks, pretrained=False)  # every weight comes from the checkpoint
    try:
        checkpoint.restore_model(model, loaded["model_state"])
    except (KeyError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{loaded['path']}: its weights do not fit the model "
                                         f"of its config: {one_line(error, 160)}") from None
    return config, tasks, model


def read_rows(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_rows(path, kept):
    """On resume: rewrite the metrics file with only the rows ``kept(row)`` accepts (those
    written up to the checkpoint; the rest will be written again)."""
    rows = [r for r in read_rows(path) if kept(r)]
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def make_callbacks(config):
    """The plugins a config's ``callbacks`` list names, and a ``time_budget`` when
    ``training.max_time`` is set."""
    callbacks = [create("callback", spec) for spec in config["callbacks"]]
    if config["training"].get("max_time") and not any(
            spec["method"] == "time_budget" for spec in config["callbacks"]):
        callbacks.append(create("callback", {"method": "time_budget",
                                             "max_time": config["training"]["max_time"]}))
    return callbacks
