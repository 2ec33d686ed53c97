"""The comparisons a multi-task result needs.

single-task   the same architecture with one head, trained on that task alone for as many
              steps as the multi-task run trained it: multi-task minus this is the transfer.
token-controlled   the same, but trained until it has consumed exactly the tokens (characters
              for text, examples for images) the multi-task run fed that task, its data
              oversampled as needed (more epochs), with the same learning-rate schedule shape
              over its own step count. It separates transfer from exposure: a task that only
              wins because the multi-task run showed it more data wins nothing here.
linear        a linear classifier on the raw input: for text, on one-hot characters,
              logits = Σ_pos W[pos, char] + b (an Embedding of (position, char) ids summed
              over positions is exactly that product); for images, on the pixels. It shows
              how hard the task is for a model without a hidden layer. (Regression: linear
              least squares on the pixels, reported as MAE.)
"""

import copy
import pathlib

import numpy as np

import tinymtl.nn as nn
from tinymtl.autograd import Tensor
from tinymtl.backend import get_device
from tinymtl.backend.random import Generator, manual_seed
from tinymtl.datasets import VOCAB_SIZE
from tinymtl.errors import Interrupted
from tinymtl.autograd.ops.segment import index_select, segment_mean
from tinymtl.graph import GraphSet, NodeSet, global_add_pool
from tinymtl.mtl import build_model, make_schedule
from tinymtl.mtl.model import graph_options, model_input
from tinymtl.optim import Adam
from tinymtl.train import checkpoint
from tinymtl.train.metrics import evaluate, task_loss
from tinymtl.train.task_kinds import TASK_KINDS
from tinymtl.train.trainer import Trainer, fit_to_budget, make_samplers


def single_task(config, task, data, steps, metrics_file=None, progress=True, tokens=None,
                checkpoint_path=None, run_tasks=None):
    """Train the single-task baseline for ``task``, for ``steps`` steps or, given ``tokens``,
    until it has consumed exactly that many; returns (model, evaluation history, counters,
    the test row). With ``checkpoint_path`` it is checkpointed like the main run (every
    ``training.checkpoint_every`` steps, at its end and when interrupted; the file holds the
    run's config and the manifests of ``run_tasks``, the run's tasks) and, when the file is
    there, resumed from it: a run interrupted in its baselines goes on where it stopped."""
    manual_seed(config["seed"])
    head = config["tasks"].get(task, {}).get("head")  # same head; alone, no stop-gradient
    arch = dict(config["model"], architecture="hard")  # one task: nothing to keep private
    model = build_model(arch, {task: data.num_outputs}, data.x_train.shape[1:],
                        {task: {"head": head}}, **graph_options(arch, data.x_train))
    # alone, a task's loss is the whole loss: no plugins (no learned weighting, no surgery)
    training = config["training"]
    budget = None
    if tokens is not None:
        batches = steps_for_tokens(data, make_samplers({task: data}, config["seed"])[task],
                                   training["batch_size"], tokens)
        steps = -(-batches // training["accumulate"])
        budget = {task: tokens}
    schedule = make_schedule("alternating", [task], steps)
    trainer = Trainer(model, {task: data}, training, schedule, config["seed"],
                      label=f"baseline:{task}",
                      metrics_file=metrics_file, progress=progress, token_budget=budget)
    save = None
    if checkpoint_path is not None:
        from tinymtl.runs.setup import save_checkpoint  # (the run's own checkpoint format)

        checkpoint_path = pathlib.Path(checkpoint_path)
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        if checkpoint_path.exists():
            trainer.load_state(checkpoint.load(checkpoint_path))

        def save(t):
            save_checkpoint(checkpoint_path, t, config, run_tasks or {task: data}, 0.0)
    finished = trainer.step >= schedule.total_steps  # (resumed after its end: its rows kept)
    history = trainer.fit(on_checkpoint=save)
    if save is not None:
        save(trainer)
    if trainer.should_stop and not trainer.stop_final:  # Ctrl-C: no half-trained reference
        raise Interrupted(f"{trainer.stop_reason} during the baseline of {task}; "
                          + ("it is checkpointed: --resume goes on from there" if save else
                             "the run's own checkpoint is saved: --resume trains the baselines "
                             "again"))
    # (resumed after its end: its test row is in the metrics already)
    return model, history, trainer.counters[task], trainer.test(record=not finished)


def steps_for_tokens(data, sampler, batch_size, tokens):
    """How many batches of ``batch_size`` examples, drawn by (a copy of) ``sampler``, a
    trainer with ``token_budget`` = ``tokens`` trains on: it draws exactly these batches."""
    sampler, used, steps = copy.deepcopy(sampler), 0, 0
    while used < tokens:
        index, cut = fit_to_budget(data, sampler.next(batch_size), tokens - used)
        if not len(index):  # not even one more example fits: this is as close as it gets
            break
        used += data.tokens(data.x_train[index])
        steps += 1
        if cut:
            break
    return max(steps, 1)


class LinearOneHot(nn.Module):
    """logits = Σ_positions W[position, char] + b: a linear model of the one-hot input."""

    def __init__(self, max_length, classes):
        super().__init__()
        self.table = nn.Embedding(max_length * VOCAB_SIZE, classes)
        nn.init.zeros_(self.table.weight)
        self.bias = nn.Parameter(np.zeros(classes, dtype=np.float32))
        self.register_buffer("offsets", np.arange(max_length) * VOCAB_SIZE)

    def forward(self, ids, task=None):
        return self.table(ids.data + self.offsets).sum(1) + self.bias


class LinearPixels(nn.Module):
    """logits = W · flatten(image) + b."""

    def __init__(self, features, classes):
        super().__init__()
        self.flatten, self.linear = nn.Flatten(), nn.Linear(features, classes)

    def forward(self, images, task=None):
        return self.linear(self.flatten(images))


class LinearPooled(nn.Module):
    """logits = W · Σ_{nodes of the graph} x_node + b: a linear model of a graph's summed node
    features (for graph inputs, what a linear model of the raw input can be)."""

    def __init__(self, features, outputs):
        super().__init__()
        self.linear = nn.Linear(features, outputs)

    def forward(self, graph, task=None):
        return self.linear(global_add_pool(Tensor(graph.x), graph.batch, graph.num_graphs))


class LinearNeighbours(nn.Module):
    """logits = W · mean_{j → i} x_j + b: a linear model of what a node's neighbours hold (for
    node tasks: a food is what its compounds are; its own features say only that it is one)."""

    def __init__(self, features, outputs):
        super().__init__()
        self.linear = nn.Linear(features, outputs)

    def forward(self, nodes, task=None):
        graph = nodes.graph
        source, target = graph.edge_index
        means = segment_mean(Tensor(graph.x[source]), target, graph.num_nodes)
        return self.linear(index_select(means, nodes.nodes))


def linear(data, steps, batch_size=256, lr=0.02, seed=0):
    """Held-out score (accuracy, or MAE for regression) of a linear model of the raw input,
    trained for ``steps`` Adam steps (the config's ``linear_baseline_steps``), and its training
    score: {'test_accuracy', 'train_accuracy'} or {'test_mae', 'train_mae'}."""
    if isinstance(data.x_train, GraphSet):
        model = LinearPooled(data.x_train.shape[1], data.num_outputs)
    elif isinstance(data.x_train, NodeSet):
        model = LinearNeighbours(data.x_train.shape[1], data.num_outputs)
    elif data.x_train.dtype.kind in "iu":
        model = LinearOneHot(data.x_train.shape[1], data.num_outputs)
    else:
        model = LinearPixels(int(np.prod(data.x_train.shape[1:])), data.num_outputs)
        lr = min(lr, 1e-3)
    model.to(get_device())
    optimizer = Adam(model.parameters(), lr=lr)
    rng = Generator(seed)
    for _ in range(steps):
        index = rng.integers(0, len(data.y_train), batch_size)
        optimizer.zero_grad()
        task_loss(data.kind, model(model_input(data.x_train[index], get_device())),
                  data.y_train[index]).backward()
        optimizer.step()
    score = f"test_{TASK_KINDS[data.kind].score}"
    train = evaluate(model, None, data.x_train, data.y_train, kind=data.kind)[score]
    return {score: evaluate(model, None, data.x_test, data.y_test, kind=data.kind)[score],
            score.replace("test_", "train_"): train}
