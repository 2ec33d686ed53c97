"""``tinymtl pretrain CONFIG``: GraphCL (You et al., NeurIPS 2020) on unlabelled molecules, so
that fine-tuning starts from an encoder that already knows chemistry's shapes.

Every step takes a batch of B graphs, makes two views of each with augmentations drawn from
``pretraining.augmentations`` (one per view, per batch: GraphCL's random pool), and encodes
both with the shared encoder f and a projection head g (Linear, ReLU, Linear):

    z_n = g(f(view₁(G_n))),  z'_n = g(f(view₂(G_n)))      loss = NT-Xent(z, z'; τ)

(``graph.augment``: each graph's second view must score above every other graph's). Only f
is kept for later: fine-tuning loads it with ``model.backbone_from: <run>/checkpoint.h5``
(the ``backbone.*`` weights; g is thrown away, as in GraphCL).

The pool is every molecule of every fetched file except those of any test split
(``datasets.molecules.pretraining_pool``), or with ``data.source: food_graph`` each food's own
graph (the food and its compounds, ``datasets.food_graph.ego_graphs``; no labels: a node task
sees every food's compounds in fine-tuning too); a seeded share of it (``data.valid_fraction``) is
held out, and every ``eval_every`` steps the loss and the contrastive accuracy (the share of
graphs whose own second view is the nearest of its batch's; chance is 1/B) are measured on it,
with the same fixed views each time. The run directory holds what every run's does: the
resolved config, metrics.jsonl, pretraining.png (loss and accuracy, train and held out),
summary.json (with the peak memory) and checkpoint.h5, periodic and resumable bit for bit.

A training config can make pretraining its first stage (``model.pretrain: <pretraining
config>``, ``first_stage``): one command then pretrains into <run>/pretraining/ and fine-tunes
from it, the pool being the tasks' own (their seed, data seed and food graph).
"""

import copy
import json
import pathlib
import sys
import time

import numpy as np

from tinymtl import nn
from tinymtl.autograd import no_grad
from tinymtl.backend import default_generator, manual_seed
from tinymtl.backend.memory import process_memory
from tinymtl.backend.random import stream
from tinymtl.datasets.base import array_digest
from tinymtl.graph.augment import augment, contrastive_accuracy, nt_xent_loss
from tinymtl.mtl.model import build_backbone, graph_options
from tinymtl.report import plots
from tinymtl.runs.setup import (RunDirectory, finished_summary, molecule_encoder, read_rows,
                                 run_identity)
from tinymtl.train import checkpoint, interrupt
from tinymtl.train.progress import ProgressBar
from tinymtl.train.trainer import make_lr_scheduler, make_optimizer

LABEL = "pretrain"  # the ``run`` of its metrics rows, and its kept checkpoints' prefix


class ContrastiveModel(nn.Module):
    """The encoder being pretrained (``backbone``, what fine-tuning loads) and GraphCL's
    projection head (``projection``), on which the loss is computed."""

    def __init__(self, backbone, projection_dim=0):
        super().__init__()
        self.backbone = backbone
        width = backbone.out_features
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                        nn.Linear(width, projection_dim or width))

    def forward(self, graph):
        return self.projection(self.backbone(graph))


def load_pool(config):
    """(train graphs, held-out graphs, the pool's manifest) of a pretraining config."""
    from tinymtl.datasets import food_graph, molecules

    data = config["data"]
    if data["source"] == "food_graph":
        # each food's own graph, unlabelled; every food's (fine-tuning sees them all too)
        features = data["compound_features"]
        embed = None if features == "fingerprint" else \
            food_graph.compound_encoder(features, molecule_encoder)
        made = food_graph.read_csv(data["csv"], data["seed"], embed) if data["csv"] else \
            food_graph.generate(data["foods"], data["cross_marker"], data["seed"], embed)
        pool, test_keys = food_graph.ego_graphs(made), ()
    else:
        pool, test_keys = molecules.pretraining_pool()
    if data["pool_size"]:
        pool = pool[:min(data["pool_size"], len(pool))]
    order = stream(data["seed"], "pretrain_split").permutation(len(pool))
    held_out = int(round(data["valid_fraction"] * len(pool)))
    train, valid = pool[np.sort(order[held_out:])], pool[np.sort(order[:held_out])]
    manifest = {"name": "pool", "generator": data["source"], "graphs": len(pool),
                "train": len(train), "valid": len(valid),
                "test_molecules_left_out": len(test_keys), "split_seed": data["seed"],
                "sha256": array_digest(*train.arrays(), *valid.arrays())}
    return train, valid, manifest


def build(config, graphs):
    """The encoder and projection head a pretraining config describes, seeded."""
    manual_seed(config["seed"])
    model_config = config["model"]
    backbone = build_backbone(model_config, graphs.shape[1:],
                              **graph_options(model_config, graphs, "the pool's graphs"))
    return ContrastiveModel(backbone, config["pretraining"]["projection_dim"])


class BatchOrder:
    """The pool's graphs in a fresh seeded order every epoch, B at a time (a last batch of
    fewer than B is left for the next epoch's order: NT-Xent compares within a batch)."""

    def __init__(self, size, batch_size, seed):
        self.size, self.batch_size = size, min(batch_size, size)
        self.generator = stream(seed, "pretrain_batches")
        self.order, self.cursor, self.epoch = self.generator.permutation(size), 0, 0

    def next(self):
        if self.cursor + self.batch_size > self.size:
            self.order, self.cursor = self.generator.permutation(self.size), 0
            self.epoch += 1
        rows = self.order[self.cursor:self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return rows

    def state_dict(self):
        return {"order": self.order, "cursor": self.cursor, "epoch": self.epoch,
                "generator": self.generator.state_dict()}

    def load_state_dict(self, state):
        order = np.asarray(state["order"])
        if sorted(order.tolist()) != list(range(self.size)):
            raise ValueError(f"the batch order is not a permutation of the pool's "
                             f"{self.size} graphs")
        self.order, self.cursor, self.epoch = order, int(state["cursor"]), int(state["epoch"])
        self.generator.load_state_dict(state["generator"])


def views(graph, names, generator, ratio):
    """Two augmented views of a collated batch: each view's augmentation drawn from ``names``."""
    first, second = (names[int(k)] for k in generator.integers(0, len(names), size=2))
    return (augment(first, graph, generator.numpy, ratio),
            augment(second, graph, generator.numpy, ratio), f"{first}+{second}")


def contrastive_step(model, graphs, names, generator, settings):
    """(loss Tensor, contrastive accuracy) of one batch of graphs (a GraphSet)."""
    first, second, _ = views(graphs.collate(), names, generator, settings["aug_ratio"])
    z, z_prime = model(first), model(second)
    return nt_xent_loss(z, z_prime, settings["temperature"]), contrastive_accuracy(z, z_prime)


def evaluate(model, graphs, config):
    """Loss and contrastive accuracy on held-out ``graphs``, in batches of the training size,
    on the same views every time (a fixed stream); None without two graphs."""
    settings = config["pretraining"]
    size = min(settings["batch_size"], len(graphs))
    if size < 2:
        return None
    generator = stream(config["seed"], "pretrain_eval")
    model.eval()
    losses, accuracies, counts = [], [], []
    with no_grad():
        for start in range(0, len(graphs) - size + 1, size):
            loss, accuracy = contrastive_step(model, graphs[start:start + size],
                                              settings["augmentations"], generator, settings)
            losses.append(float(loss.item()))
            accuracies.append(accuracy)
            counts.append(size)
    model.train()
    return {"valid_loss": float(np.average(losses, weights=counts)),
            "valid_accuracy": float(np.average(accuracies, weights=counts)),
            "chance_accuracy": 1 / size}


def stage_config(config):
    """The pretraining config a training config's ``model.pretrain`` names, made to pretrain
    on this run's data: its seed and data seed, and for a food graph the tasks' graph (foods,
    cross_marker, csv, compound_features) — fine-tuning sees the same foods and compounds."""
    from tinymtl.train import config as config_module

    path = config["model"]["pretrain"]
    raw = config_module.read_yaml(path)
    if not config_module.is_pretraining(raw):
        raise config_module.ConfigError(f"model.pretrain = {path!r}: not a pretraining config "
                                        f"(expected a 'pretraining' section and no tasks)")
    stage = config_module.load(path, raw)
    stage.update(seed=config["seed"], device=config["device"])
    stage["data"]["seed"] = config["data"]["seed"]
    if stage["data"]["source"] == "food_graph":
        graphs = [spec for spec in config["tasks"].values() if spec["generator"] == "food_graph"]
        if not graphs:
            raise config_module.ConfigError(f"model.pretrain = {path!r} pretrains on a food "
                                            f"graph; expected food_graph tasks to fine-tune")
        stage["data"].update({key: graphs[0][key] for key in ("foods", "cross_marker", "csv",
                                                              "compound_features")})
    return stage


def first_stage(config, run_dir, resume=False, progress=True, adjust=None, stage=None):
    """Run the pretraining stage of a training config (``model.pretrain``) into
    run_dir/pretraining (resumed from its checkpoint with ``resume``: a finished one only
    re-reads its result); returns (the config to fine-tune: ``backbone_from`` the stage's
    checkpoint instead of ``pretrain``; the stage's summary), or (None, the summary of the
    stage paused by an interrupt). ``adjust``: a function of the stage's config
    (the smoke test shrinks it); ``stage``: the stage's config, when already read."""
    stage = stage_config(config) if stage is None else stage
    if adjust is not None:
        stage = adjust(stage)
    out = pathlib.Path(run_dir) / "pretraining"
    summary = finished_summary(out, stage) if resume else None
    if summary is None:
        summary = run(stage, out, resume=resume, progress=progress)
    if summary.get("complete") is False:  # interrupted: nothing to fine-tune from yet
        return None, summary
    elif progress:
        print(f"pretraining: finished in {out}; fine-tuning from its checkpoint",
              file=sys.stderr)
    tuned = copy.deepcopy(config)
    tuned["model"].update(pretrain=None, backbone_from=summary["checkpoint"]["path"])
    return tuned, summary


def run(config, out_dir=None, resume=False, progress=True):
    """Pretrain the encoder a pretraining config describes (module docstring); returns the
    summary (also in summary.json)."""
    directory = RunDirectory(config, out_dir, resume)
    loaded = directory.loaded
    train, valid, manifest = load_pool(config)  # before writing: bad data leaves no folder
    directory.check_resume()
    if loaded is not None and loaded["manifests"]["pool"]["sha256"] != manifest["sha256"]:
        raise checkpoint.CheckpointError(f"{directory.checkpoint_path}: was written for other "
                                         f"pool graphs than the datasets cache holds now")
    if len(train) < 2:
        raise ValueError(f"data: the pretraining pool has {len(train)} graphs to train on; "
                         f"expected at least 2")
    settings = config["pretraining"]
    model = build(config, train)
    optimizer = make_optimizer(model.parameters(), settings)
    scheduler = make_lr_scheduler(optimizer, settings, settings["steps"])
    batches = BatchOrder(len(train), settings["batch_size"], config["seed"])
    view_generator = stream(config["seed"], "pretrain_views")
    step = 0
    directory.begin(kept=lambda r: r["run"] == LABEL and r["step"] <= loaded["step"])
    if loaded is not None:
        checkpoint.restore_model(model, loaded["model_state"])
        optimizer.load_state_dict(loaded["optimizer_state"])
        scheduler.load_state_dict(loaded["lr_scheduler_state"])
        batches.load_state_dict(loaded["trainer_state"]["batches"])
        view_generator.load_state_dict(loaded["rng_states"]["views"])
        default_generator.load_state_dict(loaded["rng_states"]["default"])
        step = loaded["step"]

    def save():
        state = {"batches": batches.state_dict(), "elapsed_seconds": directory.elapsed()}
        size = checkpoint.save(
            directory.checkpoint_path, model_state=model.state_dict(),
            optimizer_state=optimizer.state_dict(), lr_scheduler_state=scheduler.state_dict(),
            rng_states={"default": default_generator.state_dict(),
                        "views": view_generator.state_dict()},
            trainer_state=state, config=config, manifests={"pool": manifest}, step=step)
        directory.keep(LABEL, step, settings["keep_checkpoints"])
        return size

    metrics = directory.metrics_path.open("a")

    def log(row):
        metrics.write(json.dumps(dict(row, run=LABEL)) + "\n")
        metrics.flush()

    if step == 0:
        log({"type": "eval", "step": 0, **(evaluate(model, valid, config) or {})})
    bar = ProgressBar(settings["steps"], "pretrain", start=step, enabled=progress)
    train_seconds, recent = 0.0, []
    model.train()
    while step < settings["steps"]:
        started = time.perf_counter()
        loss, accuracy = contrastive_step(model, train[batches.next()],
                                          settings["augmentations"], view_generator, settings)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        train_seconds += time.perf_counter() - started
        recent.append((float(loss.item()), accuracy))
        if not np.isfinite(recent[-1][0]):
            raise ValueError(f"pretraining: the loss is {recent[-1][0]} at step {step}; "
                             f"expected a finite value (lower pretraining.lr?)")
        if step % settings["log_every"] == 0 or step == settings["steps"]:
            mean_loss, mean_accuracy = np.mean(recent, axis=0)
            log({"type": "train", "step": step, "epoch": batches.epoch, "loss": mean_loss,
                 "accuracy": mean_accuracy, "lr": optimizer.param_groups[0]["lr"]})
            recent = []
        if step % settings["eval_every"] == 0 or step == settings["steps"]:
            found = evaluate(model, valid, config) or {}
            log({"type": "eval", "step": step, **found,
                 "rss_mib": process_memory()["rss"] / 2 ** 20})
            bar.update(step, f"valid loss {found.get('valid_loss', float('nan')):.3f} "
                             f"acc {found.get('valid_accuracy', float('nan')):.3f}")
        else:
            bar.update(step)
        if settings["checkpoint_every"] and step % settings["checkpoint_every"] == 0:
            save()
        if interrupt.requested() and step < settings["steps"]:
            break  # paused: checkpointed below, resumable (train.interrupt)
    bar.close()
    metrics.close()
    checkpoint_bytes = save()
    if step < settings["steps"]:
        return directory.finish({
            "config": config, "seed": config["seed"], "complete": False,
            "stopped": f"interrupted ({interrupt.requested()})", "step": step,
            "wall_seconds": round(directory.elapsed(), 3),
            "resume": f"tinymtl pretrain {directory.out / 'config.yaml'} --out {directory.out} "
                      f"--resume",
            "checkpoint": {"path": str(directory.checkpoint_path), "bytes": checkpoint_bytes}})
    rows = read_rows(directory.metrics_path)
    plots.pretraining_curves(rows, directory.out / "pretraining.png")
    evals = [r for r in rows if r["type"] == "eval" and "valid_loss" in r]
    return directory.finish({
        **run_identity(config),
        "wall_seconds": round(directory.elapsed(), 3),
        "train_step_ms": round(1000 * train_seconds / max(settings["steps"], 1), 3),
        "steps": step, "epochs": batches.epoch, "pool": manifest,
        "initial": evals[0] if evals and evals[0]["step"] == 0 else None,
        "final": evals[-1] if evals else None,
        "peak_rss_mib": round(process_memory()["peak_rss"] / 2 ** 20, 1),
        "checkpoint": {"path": str(directory.checkpoint_path), "bytes": checkpoint_bytes},
        "fine_tune": f"model.backbone_from: {directory.checkpoint_path}",
    })
