"""``Trainer``: one training loop for every schedule and task mix.

Each step: ask the schedule which task(s) to train, draw their batches, compute the loss
(one task: w_t · L_t; a mixed batch: the backbone runs once on all examples, each example goes
through its own task's head, and L = Σ_t w_t (n_t / n) · L_t; a joint batch: every example goes
through every head, L = Σ_t w_t · L_t), backpropagate, clip, update, advance the learning-rate
schedule. L_t is cross-entropy for classification and MSE for regression (``metrics``); the
weights w_t come from ``training.weighting`` (``mtl.weighting``: by default each task's
``loss_weight``, 1 unless set). Every ``eval_every`` steps every task is evaluated
on its held-out set. Everything that decides the next step (weights, optimizer moments, learning
rate position, every random state, sampler positions, counters, history) is in ``state()``, so
a run resumed from a checkpoint continues bitwise identically.
"""

import json
import time

import numpy as np

from tinymtl.autograd import Tensor
from tinymtl.backend.random import Generator, default_generator
from tinymtl.datasets.sampler import EpochSampler
from tinymtl.mtl.sampling import TaskSampler
from tinymtl.mtl.surgery import GradientSurgery
from tinymtl.mtl.weighting import make_weighting
from tinymtl.nn.utils import clip_grad_norm_
from tinymtl.optim import SGD, Adam, AdamW
from tinymtl.optim.lr_scheduler import (CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR,
                                        StepLR)
from tinymtl.train.metrics import SCORES, evaluate, score_sum, task_loss
from tinymtl.train.progress import ProgressBar


def make_optimizer(parameters, training):
    name, lr, wd = training["optimizer"], training["lr"], training["weight_decay"]
    if name == "sgd":
        return SGD(parameters, lr=lr, momentum=training["momentum"], weight_decay=wd)
    return (AdamW if name == "adamw" else Adam)(parameters, lr=lr, weight_decay=wd)


def make_lr_scheduler(optimizer, training, total_steps):
    """constant | cosine (to 0) | step (x0.1 at 1/3 and 2/3), after an optional linear warm-up."""
    warmup = min(training["warmup_steps"], max(total_steps - 1, 0))
    rest = max(total_steps - warmup, 1)
    kind = training["lr_schedule"]
    if kind == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=rest)
    elif kind == "step":
        main = StepLR(optimizer, step_size=max(rest // 3, 1), gamma=0.1)
    else:
        main = LambdaLR(optimizer, lambda t: 1.0)
    if not warmup:
        return main
    return SequentialLR(optimizer, [LinearLR(optimizer, 1e-3, 1.0, warmup), main], [warmup])


def _same_inputs(tasks):
    first = tasks[0].x_train
    return all(t.x_train is first or (t.x_train.shape == first.shape
                                      and np.array_equal(t.x_train, first)) for t in tasks[1:])


def format_scores(tasks, prefix=""):
    """'A: acc 0.951 C: mae 0.031' for a row's per-task results."""
    parts = []
    for task, values in tasks.items():
        for name, short in (("accuracy", "acc"), ("mae", "mae")):
            if f"{prefix}{name}" in values:
                parts.append(f"{task}: {prefix.replace('_', ' ')}{short} "
                             f"{values[prefix + name]:.3f}")
    return " ".join(parts)


def make_samplers(tasks, seed):
    """One seeded epoch sampler per task (how a Trainer with this seed will draw batches)."""
    root = Generator(seed)
    return {task: EpochSampler(len(data.y_train), root.spawn(k + 1))
            for k, (task, data) in enumerate(sorted(tasks.items()))}


def fit_to_budget(data, index, left):
    """The leading examples of batch ``index`` whose tokens (``TaskData.token_counts``) add
    up to at most ``left``, and whether the batch was cut: a cut batch is a token budget's
    last (the trainer stops there, and ``baselines.steps_for_tokens`` plans for it)."""
    fits = int((np.cumsum(data.token_counts(data.x_train[index])) <= left).sum())
    return index[:fits], fits < len(index)


class Trainer:
    """``token_budget`` ({task: tokens}) stops a task's batches at that many tokens: the batch
    that would pass it is cut to the examples that fit (``fit_to_budget``), and is its last."""

    def __init__(self, model, tasks, training, schedule, seed, label="multitask",
                 metrics_file=None, progress=True, loss_weights=None, task_lrs=None,
                 token_budget=None, continual=None):
        self.model, self.tasks, self.training = model, tasks, training
        self.schedule, self.label = schedule, label
        self.metrics_file, self.progress = metrics_file, progress
        for phase in schedule.phases:
            if phase.mode == "joint" and not _same_inputs([tasks[t] for t in phase.tasks]):
                raise ValueError(f"the joint schedule needs tasks that label the same inputs; "
                                 f"{', '.join(phase.tasks)} have different training inputs")
        self.weighting = make_weighting(
            training["weighting"], sorted(tasks), {t: d.kind for t, d in tasks.items()},
            loss_weights, alpha=training["gradnorm_alpha"],
            temperature=training["dwa_temperature"], window=training["dwa_window"])
        groups = self._parameter_groups(model, task_lrs or {})
        if self.weighting.parameters():  # learned loss weights: no weight decay
            groups.append({"params": self.weighting.parameters(), "weight_decay": 0.0})
        self.optimizer = make_optimizer(groups, training)
        self.lr_scheduler = make_lr_scheduler(self.optimizer, training, schedule.total_steps)
        root = Generator(seed)
        self.samplers = make_samplers(tasks, seed)
        self.token_budget = dict(token_budget or {})
        self.continual = continual  # mtl.continual.ContinualStrategy: rewrites one task's terms
        self._budget_cut = set()  # tasks whose last batch was cut to fit (training's end)
        self.task_sampler = TaskSampler(
            training["sampling"], {t: len(d.y_train) for t, d in tasks.items()},
            training["sampling_temperature"], seed=int(root.spawn(0).integers(2 ** 31)))
        method = training["gradients"]
        self.surgery = None if method == "sum" else GradientSurgery(
            method, sorted(tasks), seed=int(root.spawn(len(tasks) + 1).integers(2 ** 31)),
            c=training["cagrad_c"])
        self.step = 0
        self.train_seconds = 0.0  # time spent in train_step (no evaluation, no checkpoints)
        self.history = []
        self.counters = {task: {"steps": 0, "examples": 0, "tokens": 0} for task in tasks}
        self._running = {}

    @staticmethod
    def _parameter_groups(model, task_lrs):
        """One optimizer group for everything at ``training.lr``, and one per task that sets
        its own ``lr`` (that task's head: per-task learning rates)."""
        own = {task: [p for p in model.heads[task].parameters() if p.requires_grad]
               for task, lr in task_lrs.items() if lr is not None and task in model.heads}
        separate = {id(p) for params in own.values() for p in params}
        groups = [{"params": [p for p in model.parameters()
                              if p.requires_grad and id(p) not in separate]}]
        groups += [{"params": params, "lr": task_lrs[task]}
                   for task, params in sorted(own.items()) if params]
        return groups

    # -- one step ---------------------------------------------------------------------------------
    def _batch(self, task, size):
        data = self.tasks[task]
        index = self.samplers[task].next(size)
        if task in self.token_budget:
            left = self.token_budget[task] - self.counters[task]["tokens"]
            index, cut = fit_to_budget(data, index, left)
            if cut:
                self._budget_cut.add(task)
        return data.x_train[index], data.y_train[index]

    def train_step(self):
        """One update: ``accumulate`` micro-batches, each backpropagating loss / accumulate, so
        the summed gradient is that of one batch ``accumulate`` times larger."""
        _, phase, offset = self.schedule.phase_at(self.step)
        mode = phase.mode
        if mode == "alternating":
            tasks = (self.task_sampler.choose(phase.tasks, offset),)
        else:
            tasks = phase.tasks
        micro_batches = self.training["accumulate"]
        self.optimizer.zero_grad()
        total = 0.0
        task_losses = dict.fromkeys(tasks, 0.0)
        for _ in range(micro_batches):
            if self._budget_spent(tasks):
                break
            terms, per_task = self._loss(mode, tasks)
            loss = sum(terms.values())
            if micro_batches > 1:
                terms = {t: term / micro_batches for t, term in terms.items()}
            if self.surgery is not None and len(terms) > 1 and self.model.shared_parameters():
                self.surgery.backward(terms, self.model.shared_parameters(), {
                    t: self.model.task_parameters(t) + self.weighting.task_parameters(t)
                    for t in terms})
            else:
                (loss / micro_batches if micro_batches > 1 else loss).backward()
            total += loss.item() / micro_batches
            for task, *_, task_loss_value in per_task:
                task_losses[task] += task_loss_value.item() / micro_batches
            self._count(per_task)
        self.weighting.before_step()
        if self.training["grad_clip"]:
            clip_grad_norm_(self.model.parameters(), self.training["grad_clip"])  # not w or s
        if self.continual is not None:
            self.continual.before_step(self.model)
        self.optimizer.step()
        if self.continual is not None:
            self.continual.after_step(self.model)
        self.weighting.after_step(task_losses)
        self.lr_scheduler.step()
        self.step += 1
        for task in tasks:
            self.counters[task]["steps"] += 1
        return total

    def _budget_spent(self, tasks):
        return any(t in self._budget_cut or self.counters[t]["tokens"] >= self.token_budget[t]
                   for t in tasks if t in self.token_budget)

    def _task_loss(self, task, outputs, y):
        return task_loss(self.tasks[task].kind, outputs, y)

    def _loss(self, mode, tasks):
        """The weighted loss terms {task: term} of one micro-batch (the loss is their sum), and
        (task, x, y, outputs, task loss) for the statistics."""
        batch_size = self.training["batch_size"]
        if mode == "alternating":
            (task,) = tasks
            x, y = self._batch(task, batch_size)
            features = self.model.features(Tensor(x))
            outputs = self.model.forward_heads(features, task)
            loss = self._task_loss(task, outputs, y)
            terms = self.weighting.terms({task: loss}, self.model)
            if self.continual is not None:
                terms = self.continual.terms(self.model, task, x, y, terms, features)
            return terms, [(task, x, y, outputs, loss)]
        if mode == "joint":  # one batch of inputs, every task's labels for it
            index = self.samplers[tasks[0]].next(batch_size)
            x = self.tasks[tasks[0]].x_train[index]
            batches = [(x, self.tasks[task].y_train[index]) for task in tasks]
            shares = [1.0] * len(tasks)
        else:
            sizes = [batch_size // len(tasks) + (k < batch_size % len(tasks))
                     for k in range(len(tasks))]
            batches = [self._batch(task, size) for task, size in zip(tasks, sizes)]
            x = np.concatenate([x for x, _ in batches])
            shares = [size / batch_size for size in sizes]
        features = self.model.features(Tensor(x))
        losses, start, per_task = {}, 0, []
        for task, (x_task, y), share in zip(tasks, batches, shares):
            rows = features if mode == "joint" else features[start:start + len(y)]
            outputs = self.model.forward_heads(rows, task)
            part = self._task_loss(task, outputs, y)
            losses[task] = part * share if share != 1.0 else part
            per_task.append((task, x_task, y, outputs, part))
            start += len(y)
        return self.weighting.terms(losses, self.model), per_task

    def _count(self, per_task):
        for task, x, y, outputs, task_loss_value in per_task:
            counter = self.counters[task]
            counter["examples"] += len(y)
            counter["tokens"] += self.tasks[task].tokens(x)
            running = self._running.setdefault(task, [0.0, 0, 0])
            running[0] += task_loss_value.item() * len(y)
            running[1] += score_sum(self.tasks[task].kind, outputs.data, y)
            running[2] += len(y)

    # -- the loop ----------------------------------------------------------------------------------
    def evaluate(self):
        row = {"run": self.label, "type": "eval", "step": self.step,
               "tasks": {task: dict(evaluate(self.model, task, data.x_test, data.y_test,
                                             kind=data.kind),
                                    trained_steps=self.counters[task]["steps"],
                                    trained_tokens=self.counters[task]["tokens"])
                         for task, data in self.tasks.items()}}
        self.history.append(row)
        self._write(row)
        return row

    def _log_train(self):
        row = {"run": self.label, "type": "train", "step": self.step,
               "lr": self.optimizer.param_groups[0]["lr"], "tasks": {}}
        weights = self.weighting.weights()
        for task, (loss, score, count) in sorted(self._running.items()):
            row["tasks"][task] = {"loss": loss / count,
                                  SCORES[self.tasks[task].kind]: score / count,
                                  "weight": weights[task], **self.counters[task]}
        if self.surgery is not None:
            row["gradients"] = self.surgery.statistics()
        self._running = {}
        self._write(row)
        return row

    def _write(self, row):
        if self.metrics_file is not None:
            with open(self.metrics_file, "a") as f:
                f.write(json.dumps(row) + "\n")

    def fit(self, on_checkpoint=None):
        """Train to the end of the schedule (from ``self.step``, so also after a resume)."""
        total = self.schedule.total_steps
        bar = ProgressBar(total, self.label, start=self.step, enabled=self.progress)
        every = self.training["checkpoint_every"]
        status = ""
        while self.step < total:
            started = time.perf_counter()
            self.train_step()
            self.train_seconds += time.perf_counter() - started
            if self.step % self.training["log_every"] == 0 or self.step == total:
                status = format_scores(self._log_train()["tasks"])
            if self.step % self.training["eval_every"] == 0 or self.step == total:
                status = format_scores(self.evaluate()["tasks"], prefix="test_")
            if on_checkpoint and every and self.step % every == 0 and self.step < total:
                on_checkpoint(self)
            bar.update(self.step, status)
        bar.close()
        return self.history

    # -- state for checkpoints --------------------------------------------------------------------
    def state(self):
        """(JSON-able state, named arrays) of everything but the model and optimizer."""
        state = {"step": self.step, "label": self.label, "history": self.history,
                 "train_seconds": self.train_seconds,
                 "counters": self.counters, "running": self._running,
                 "weighting": self.weighting.state_dict(),
                 "surgery": None if self.surgery is None else self.surgery.state_dict(),
                 "samplers": {t: s.state_dict() for t, s in self.samplers.items()}}
        arrays = {f"sampler_order.{t}": s.order for t, s in self.samplers.items()}
        return state, arrays

    def rng_states(self):
        return {"default": default_generator.state_dict(),
                "task_sampler": self.task_sampler.state_dict()}

    def load_state(self, checkpoint):
        """Restore from ``train.checkpoint.load(...)``'s result (model weights included)."""
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler_state"])
        default_generator.load_state_dict(checkpoint["rng_states"]["default"])
        if "task_sampler" in checkpoint["rng_states"]:  # absent in checkpoints before sampling
            self.task_sampler.load_state_dict(checkpoint["rng_states"]["task_sampler"])
        state, arrays = checkpoint["trainer_state"], checkpoint["trainer_arrays"]
        self.step, self.history = state["step"], state["history"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.counters, self._running = state["counters"], state["running"]
        if "weighting" in state:  # absent in checkpoints written before loss weighting
            self.weighting.load_state_dict(state["weighting"])
        if self.surgery is not None:
            self.surgery.load_state_dict(state["surgery"])
        for task, sampler in self.samplers.items():
            sampler.load_state_dict(state["samplers"][task], arrays[f"sampler_order.{task}"])
