"""``tinymtl run CONFIG --smoke``: every code path of a config, in seconds.

The same config, shrunk (``shrink``: ~100 training examples per task, batches of at most 16,
20 steps per stage or phase and for the linear baseline, at most three stages of a continual
sequence, an evaluation and a checkpoint every 10 steps, the last two checkpoints kept), is run
to the end: each task's training step, its evaluations, checkpoints, the test evaluation, the
baselines, plots and summary. Then it is run again from its mid-run checkpoint
(``--resume``), and must end on bitwise the same weights; then its checkpoint is loaded as
``tinymtl eval`` and ``predict`` load it, and each task answers a few test inputs. A
comparison file smokes each strategy once (one seed); a pretraining config
(``run_pretraining``) pretrains on ~150 of its pool's graphs, resumes, and encodes a few with
the checkpoint's encoder; a training config with a pretraining stage (``model.pretrain``) runs
that stage so shrunk first, then fine-tunes from it. CI smokes every file in ``examples/``.
"""

import copy
import shutil
import time

import numpy as np

from tinymtl import datasets
from tinymtl.train import checkpoint

SIZES = {"train_size": 100, "test_size": 40}
STEPS, EVERY, BATCH, STAGES = 20, 10, 16, 3


def shrink(config):
    """``config`` made small: a few examples, steps, evaluations and checkpoints."""
    config = copy.deepcopy(config)
    for spec in config["tasks"].values():
        plan = datasets.source(spec["generator"]).plan(spec, config["data"]["max_length"])
        spec.update(train_size=min(SIZES["train_size"], plan.train_size),  # (a small file's
                    test_size=min(SIZES["test_size"], plan.test_size))     # own, at most)
        spec.pop("valid_size", None)
    training = config["training"]
    phases = training.get("phases")
    if phases:
        for phase in phases:
            phase["steps"] = STEPS
    training.update(steps=STEPS * max(len(phases or []), 1), epochs=None, eval_every=EVERY,
                    batch_size=min(training["batch_size"], BATCH),
                    log_every=EVERY // 2, checkpoint_every=EVERY, keep_checkpoints=2,
                    warmup_steps=min(training["warmup_steps"], 2), max_time=None)
    continual = config.get("continual") or {}
    if continual.get("stages") and len(continual["stages"]) > STAGES:
        continual["stages"] = continual["stages"][:STAGES]  # every path shows by the third
        config["tasks"] = {t: config["tasks"][t] for t in continual["stages"]}
    if continual.get("fisher_samples"):
        continual["fisher_samples"] = min(continual["fisher_samples"], 20)
    if continual.get("size"):
        continual["size"] = min(continual["size"], 50)
    config["linear_baseline_steps"] = min(config["linear_baseline_steps"], STEPS)
    config["data"]["cache"] = False
    return config


def _require(holds, message):
    """A smoke check (raised even under ``python -O``): a failure is a bug in tinymtl."""
    if not holds:
        raise AssertionError(message)


def _whole_then_resumed(run_protocol, small, out_dir, progress):
    """Run ``small`` whole (into out_dir/whole), then again from its first kept mid-run
    checkpoint (out_dir/resumed), and require bitwise the same final weights; returns (the
    whole run's summary, its final checkpoint loaded, its kept checkpoints)."""
    from tinymtl.runs.setup import kept_checkpoints

    out = out_dir / "whole"
    summary = run_protocol(small, out, progress=progress)
    kept = kept_checkpoints(out)
    _require(kept, f"{out}: no mid-run checkpoint was kept")
    legs = out_dir / "resumed"
    legs.mkdir(parents=True, exist_ok=True)
    shutil.copy(kept[0], legs / "checkpoint.h5")
    run_protocol(small, legs, resume=True, progress=progress)
    final = checkpoint.load(out / "checkpoint.h5")
    whole = final["model_state"]
    again = checkpoint.load(legs / "checkpoint.h5")["model_state"]
    _require(whole.keys() == again.keys() and all(
        np.array_equal(whole[k], again[k]) for k in whole),
        f"resumed from {kept[0].name}, the run ended on other weights")
    return summary, final, kept


def run(config, out_dir, progress=False):
    """Smoke ``config`` (a validated run config) in ``out_dir``; returns a report: what ran,
    and the seconds it took. Raises AssertionError naming the path that failed."""
    from tinymtl.runs import run as run_config
    from tinymtl.runs.setup import model_from_checkpoint
    from tinymtl.train.metrics import predict_logits

    started = time.perf_counter()
    small = shrink(config)
    if small["model"]["pretrain"]:  # its first stage, shrunk: the run then fine-tunes from it
        from tinymtl.runs import pretrain

        small, _ = pretrain.first_stage(small, out_dir, progress=progress,
                                        adjust=shrink_pretraining)
    summary, final, kept = _whole_then_resumed(run_config, small, out_dir, progress)
    _, tasks, model = model_from_checkpoint(final)
    answered = 0
    for task, data in tasks.items():
        outputs = predict_logits(model, task, data.x_test[:3])
        _require(np.isfinite(outputs).all(), f"{task}: predictions are not finite")
        answered += len(outputs)
    return {"steps": small["training"]["steps"], "tasks": sorted(tasks),
            "checkpoints": [p.name for p in kept], "resumed_from": kept[0].name,
            "predictions": answered, "complete": summary.get("complete", True),
            "seconds": round(time.perf_counter() - started, 2)}


def run_comparison(comparison, out_dir, progress=False):
    """Smoke each strategy of a comparison once (its first seed)."""
    return {name: run(config, out_dir / name, progress)
            for name, config in comparison["strategies"].items()}


def shrink_pretraining(config):
    """A pretraining ``config`` made small: ~150 of its pool's graphs, few steps."""
    small = copy.deepcopy(config)
    small["data"]["pool_size"] = min(config["data"]["pool_size"] or 150, 150)
    small["pretraining"].update(steps=STEPS, eval_every=EVERY, log_every=EVERY // 2,
                                checkpoint_every=EVERY, keep_checkpoints=2,
                                batch_size=min(config["pretraining"]["batch_size"], BATCH),
                                warmup_steps=min(config["pretraining"]["warmup_steps"], 2))
    return small


def run_pretraining(config, out_dir, progress=False):
    """Smoke a pretraining config (``runs.pretrain``) as ``run`` smokes a training config: the
    shrunk run whole, again from its mid-run checkpoint (bitwise the same weights), then its
    encoder loaded as fine-tuning loads it (``model.backbone_from``) encodes a few graphs."""
    from tinymtl.runs import pretrain

    started = time.perf_counter()
    small = shrink_pretraining(config)
    _, final, kept = _whole_then_resumed(pretrain.run, small, out_dir, progress)
    train, valid, _ = pretrain.load_pool(small)
    model = pretrain.build(small, train)
    checkpoint.restore_model(model, final["model_state"])
    graphs = (valid if len(valid) else train)[:3]
    features = model.backbone(graphs.collate()).numpy()
    _require(np.isfinite(features).all(), "the pretrained encoder's features are not finite")
    return {"steps": STEPS, "tasks": ["GraphCL"], "checkpoints": [p.name for p in kept],
            "resumed_from": kept[0].name, "predictions": len(features), "complete": True,
            "seconds": round(time.perf_counter() - started, 2)}
