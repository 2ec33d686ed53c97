"""``Trainer``: one training loop for every schedule and task mix.

Each step: ask the schedule which task(s) to train, draw their batches, compute the loss
(one task: w_t · L_t; a mixed batch: the backbone runs once on all examples, each example goes
through its own task's head, and L = Σ_t w_t (n_t / n) · L_t; a joint batch: every example goes
through every head, L = Σ_t w_t · L_t), backpropagate, clip, update, advance the learning-rate
schedule. L_t is cross-entropy for classification and MSE for regression (``metrics``).
Every ``eval_every`` steps every task is evaluated on its held-out set.

Everything else acts through **plugins** (``mtl.plugin``: the hooks and their order): the loss
weighting (``mtl.weighting``, default ``Static``: each task's ``loss_weight``, 1 unless set)
turns the task losses into terms, a gradient surgery (``mtl.surgery``) may own the backward
pass, a continual-learning method (``mtl.continual``) adds terms and closes stages, and any
user plugin can watch or change a step. Everything that decides the next step (weights,
optimizer moments, learning rate position, every random state, sampler positions, counters,
history, each plugin's ``state_dict``) is in the checkpoint, so a run resumed from one
continues bitwise identically.
"""

import json
import math
import time

import numpy as np

from tinymtl.backend.random import Generator, default_generator, stream
from tinymtl.datasets.sampler import EpochSampler
from tinymtl.errors import CheckpointError, one_line
from tinymtl.mtl.model import concatenate_inputs
from tinymtl.mtl.plugin import Batch
from tinymtl.mtl.sampling import TaskSampler
from tinymtl.mtl.weighting import LossWeighting, Static
from tinymtl.nn.utils import clip_grad_norm_
from tinymtl.optim import SGD, Adam, AdamW
from tinymtl.optim.lr_scheduler import (CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR,
                                        StepLR)
from tinymtl.train import interrupt
from tinymtl.train.checkpoint import restore_model
from tinymtl.train.metrics import evaluate, score_sum, task_loss
from tinymtl.train.nonfinite import NonFinitePolicy
from tinymtl.train.progress import ProgressBar
from tinymtl.train.task_kinds import TASK_KINDS


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


def format_scores(tasks, prefixes=("",)):
    """'A: valid acc 0.951 C: valid mae 0.031' for a row's per-task results (each score's
    key: the first of ``prefixes`` + score that the row has)."""
    parts = []
    for task, values in tasks.items():
        for kind in TASK_KINDS.values():
            prefix = next((p for p in prefixes if f"{p}{kind.score}" in values), None)
            if prefix is not None:
                value = values[prefix + kind.score]  # (None: undefined on so few examples)
                parts.append(f"{task}: {prefix.replace('_', ' ')}{kind.abbreviation} "
                             f"{'-' if value is None else f'{value:.3f}'}")
    return " ".join(parts)


def make_samplers(tasks, seed):
    """One seeded epoch sampler per task (how a Trainer with this seed will draw batches)."""
    return {task: EpochSampler(len(data.y_train), stream(seed, "epoch_sampler", k))
            for k, (task, data) in enumerate(sorted(tasks.items()))}


def _seeded(generator):
    """A fresh generator seeded by one draw of ``generator`` (how each stream is started)."""
    return Generator(int(generator.integers(2 ** 31)))


def order_plugins(plugins):
    """The plugins in the order their hooks run: the loss weighting first (it turns the task
    losses into terms; ``Static`` if none is given), then the others as given. Names must be
    unique (they key the checkpoint), and at most one plugin may own the backward pass."""
    weightings = [p for p in plugins if isinstance(p, LossWeighting)]
    if len(weightings) > 1:
        raise ValueError(f"one loss weighting per trainer; got {len(weightings)}: "
                         f"{', '.join(p.name for p in weightings)}")
    ordered = (weightings or [Static()]) + [p for p in plugins if p not in weightings]
    names = [plugin_name(p) for p in ordered]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"two plugins named {repeated[0]!r}; each needs its own name")
    owners = [n for n, p in zip(names, ordered) if p.owns_backward]
    if len(owners) > 1:
        raise ValueError(f"at most one plugin may own the backward pass; got {', '.join(owners)}")
    return ordered


def plugin_name(plugin):
    """Its key in checkpoints and logs: the registered name, else the class name."""
    return plugin.name or type(plugin).__name__


def fit_to_budget(data, index, left):
    """The leading examples of batch ``index`` whose tokens (``TaskData.token_counts``) add
    up to at most ``left``, and whether the batch was cut: a cut batch is a token budget's
    last (the trainer stops there, and ``baselines.steps_for_tokens`` plans for it)."""
    fits = int((np.cumsum(data.token_counts(data.x_train[index])) <= left).sum())
    return index[:fits], fits < len(index)


def run_label(tasks):
    """What a trainer's rows, checkpoints and progress are labelled when the caller names
    nothing: "multitask" for several tasks, "single-task" for one."""
    return "multitask" if len(tasks) > 1 else "single-task"


class Trainer:
    """``plugins``: ``mtl.plugin.Plugin`` instances (a loss weighting, a gradient surgery, a
    continual method, callbacks). ``token_budget`` ({task: tokens}) stops a task's batches at
    that many tokens: the batch that would pass it is cut to the examples that fit
    (``fit_to_budget``), and is its last."""

    def __init__(self, model, tasks, training, schedule, seed, label=None,
                 metrics_file=None, progress=True, task_lrs=None, token_budget=None,
                 plugins=()):
        self.model, self.tasks, self.training = model, tasks, training
        self.schedule, self.label, self.seed = schedule, label or run_label(tasks), seed
        self.metrics_file, self.progress = metrics_file, progress
        for phase in schedule.phases:
            if phase.mode == "joint" and not _same_inputs([tasks[t] for t in phase.tasks]):
                raise ValueError(f"the joint schedule needs tasks that label the same inputs; "
                                 f"{', '.join(phase.tasks)} have different training inputs")
        self.plugins = order_plugins(list(plugins))
        self.nonfinite = next((p for p in self.plugins if isinstance(p, NonFinitePolicy)),
                              None) or NonFinitePolicy.from_training(training)
        for plugin in self.plugins:
            if not plugin.accumulates and training["accumulate"] > 1:
                raise ValueError(f"{plugin_name(plugin)} works on one batch's gradients; "
                                 f"expected training.accumulate = 1, got "
                                 f"{training['accumulate']}")
        for plugin in self.plugins:
            plugin.setup(self)
        groups = self._parameter_groups(model, task_lrs or {})
        learned = [p for plugin in self.plugins for p in plugin.parameters()]
        if learned:  # learned by plugins (e.g. loss weights): no weight decay
            groups.append({"params": learned, "weight_decay": 0.0})
        self.optimizer = make_optimizer(groups, training)
        self.lr_scheduler = make_lr_scheduler(self.optimizer, training, schedule.total_steps)
        self.samplers = make_samplers(tasks, seed)
        self.token_budget = dict(token_budget or {})
        self._budget_cut = set()  # tasks whose last batch was cut to fit (training's end)
        self.task_sampler = TaskSampler(
            training["sampling"], {t: len(d.y_train) for t, d in tasks.items()},
            training["sampling_temperature"], seed=int(stream(seed, "task_sampler").integers(
                2 ** 31)))
        self.step = 0
        self.train_seconds = 0.0  # time spent in train_step (no evaluation, no checkpoints)
        self.history = []
        self.counters = {task: {"steps": 0, "examples": 0, "tokens": 0} for task in tasks}
        self._running = {}
        self.skipped = self.consecutive_skips = 0  # steps dropped for a non-finite loss
        self.should_stop = False  # a plugin (early stopping, a time budget) ends fit() early
        self.stop_reason, self.stop_final = None, True
        self.checkpointer = None  # the run's saver: checkpointer(trainer, name) writes a file

    # -- what plugins ask of the trainer --------------------------------------------------------
    def stop(self, reason, final=True):
        """End ``fit`` after this step (Lightning's ``trainer.should_stop``): ``reason`` goes in
        the metrics and the summary. ``final``: training is over (early stopping); otherwise
        it is only paused (a time budget): the checkpoint does not keep the stop, and
        ``--resume`` goes on training."""
        self.should_stop, self.stop_reason, self.stop_final = True, reason, final

    def save_checkpoint(self, name):
        """Write the run's checkpoint under ``name`` (e.g. 'best.h5') in its directory; the
        path, or None when the trainer runs without a run directory."""
        return None if self.checkpointer is None else self.checkpointer(self, name)

    @property
    def weighting(self):
        """The loss weighting plugin (always one: ``Static`` unless another was given)."""
        return self.plugins[0]

    @property
    def surgery(self):
        """The plugin that owns the backward pass (gradient surgery), or None."""
        return next((p for p in self.plugins if p.owns_backward), None)

    def plugin(self, name):
        """The plugin of this name (``plugin_name``), or None."""
        return next((p for p in self.plugins if plugin_name(p) == name), None)

    def generator(self, name, offset=0):
        """A fresh random generator for the named stream of this trainer's seed
        (``backend.random.STREAMS``): what a plugin that draws random numbers uses."""
        return _seeded(stream(self.seed, name, offset))

    def task_parameters(self, task):
        """The parameters only ``task``'s loss depends on: its head (adapter, gate) and the
        plugins' task parameters (e.g. its learned loss weight)."""
        return self.model.task_parameters(task) + [
            p for plugin in self.plugins for p in plugin.task_parameters(task)]

    def _call(self, hook, *args):
        for plugin in self.plugins:
            getattr(plugin, hook)(self, *args)

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
        self._call("on_step_start", tasks)
        micro_batches = self.training["accumulate"]
        self.optimizer.zero_grad()
        total = 0.0
        task_losses = dict.fromkeys(tasks, 0.0)
        for _ in range(micro_batches):
            if self._budget_spent(tasks):
                break
            terms, per_task, batch = self._loss(mode, tasks)
            loss = sum(terms.values())
            value = loss.item()
            if not math.isfinite(value):  # before backward: the weights are untouched
                return self._nonfinite(self._culprit(per_task, terms))
            if micro_batches > 1:
                terms = {t: term / micro_batches for t, term in terms.items()}
            if not any(p.backward(self, terms, batch) for p in self.plugins if p.owns_backward):
                (loss / micro_batches if micro_batches > 1 else loss).backward()
            total += value / micro_batches
            for task, *_, task_loss_value in per_task:
                task_losses[task] += task_loss_value.item() / micro_batches
            self._count(per_task)
        checking = self.nonfinite.checks(self)
        if checking:
            bad = self._first_nonfinite("gradient", lambda p: p.grad)
            if bad:
                return self._nonfinite(bad)
        if self.training["grad_clip"]:
            clip_grad_norm_(self.model.parameters(), self.training["grad_clip"])  # not w or s
        self._call("on_before_optimizer_step")
        self.optimizer.step()
        self._call("on_after_optimizer_step", task_losses)
        self.lr_scheduler.step()
        self.step += 1
        self.consecutive_skips = 0
        for task in tasks:
            self.counters[task]["steps"] += 1
        if checking:
            bad = self._first_nonfinite("weight", lambda p: p.data)
            if bad:  # after an update there is nothing to skip: stop whatever the policy
                raise self.nonfinite.diverged(self, bad, "its weights are no longer finite")
        return total

    # -- non-finite values: found here, the policy decides (``nonfinite.NonFinitePolicy``) ---------
    @staticmethod
    def _culprit(per_task, terms):
        """What made the step's loss non-finite: a task's loss, or another loss term."""
        for task, *_, value in per_task:
            if not math.isfinite(value.item()):
                return f"task {task}'s loss", value.item()
        for name, term in terms.items():
            if not math.isfinite(term.item()):
                return f"the loss term {name}", term.item()
        return "the loss", float("nan")

    def _first_nonfinite(self, what, read):
        """(description, value) of the first parameter whose ``read(p)`` holds NaN or ±inf."""
        for name, p in self.model.named_parameters():
            array = read(p)
            if array is not None and not bool(p.xp.isfinite(array).all()):
                return f"the {what} of {name}", float(array[~p.xp.isfinite(array)].ravel()[0])
        return None

    def _nonfinite(self, culprit):
        """A non-finite value before the update: logged, then the policy (``nonfinite.py``)
        stops the run (DivergedError; the weights and last checkpoint as they were) or counts
        a skip and has the step dropped: no update, the schedule moves on."""
        what, value = culprit
        row = {"run": self.label, "type": "nonfinite", "step": self.step + 1, "what": what,
               "value": repr(value), "policy": self.nonfinite.policy}
        self._write(row)
        self.nonfinite.on_nonfinite(self, culprit)
        self.optimizer.zero_grad()
        self.lr_scheduler.step()
        self.step += 1
        return float("nan")

    def _budget_spent(self, tasks):
        return any(t in self._budget_cut or self.counters[t]["tokens"] >= self.token_budget[t]
                   for t in tasks if t in self.token_budget)

    def _task_loss(self, task, outputs, y):
        return task_loss(self.tasks[task].kind, outputs, y)

    def _loss_terms(self, losses, batch):
        """The plugins' loss terms, from the task losses {task: L_t} (``Plugin.loss_terms``)."""
        terms = losses
        for plugin in self.plugins:
            terms = plugin.loss_terms(self, terms, batch)
        return terms

    def _loss(self, mode, tasks):
        """The loss terms {name: term} of one micro-batch (the loss is their sum), (task, x, y,
        outputs, task loss) for the statistics, and the ``Batch`` they came from."""
        batch_size = self.training["batch_size"]
        if mode == "alternating":
            (task,) = tasks
            x, y = self._batch(task, batch_size)
            features = self.model.features(x)
            outputs = self.model.forward_heads(features, task)
            loss = self._task_loss(task, outputs, y)
            batch = Batch(mode, tasks, x, y, features)
            return self._loss_terms({task: loss}, batch), [(task, x, y, outputs, loss)], batch
        if mode == "joint":  # one batch of inputs, every task's labels for it
            index = self.samplers[tasks[0]].next(batch_size)
            x = self.tasks[tasks[0]].x_train[index]
            batches = [(x, self.tasks[task].y_train[index]) for task in tasks]
            shares = [1.0] * len(tasks)
        else:
            sizes = [batch_size // len(tasks) + (k < batch_size % len(tasks))
                     for k in range(len(tasks))]
            batches = [self._batch(task, size) for task, size in zip(tasks, sizes)]
            x = concatenate_inputs([x for x, _ in batches])
            shares = [size / batch_size for size in sizes]
        features = self.model.features(x)
        losses, start, per_task = {}, 0, []
        for task, (x_task, y), share in zip(tasks, batches, shares):
            rows = features if mode == "joint" else features[start:start + len(y)]
            outputs = self.model.forward_heads(rows, task)
            part = self._task_loss(task, outputs, y)
            losses[task] = part * share if share != 1.0 else part
            per_task.append((task, x_task, y, outputs, part))
            start += len(y)
        batch = Batch(mode, tasks, x, None, features)
        return self._loss_terms(losses, batch), per_task, batch

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
    def _quick_subset(self, k, n):
        """Task k's quick-evaluation examples: ``training.eval_size`` of its n, drawn once
        from its own seeded stream (the same at every evaluation, and after a resume)."""
        size = self.training.get("eval_size") or 0
        if not size or size >= n:
            return None
        return np.sort(stream(self.seed, "quick_eval", k).permutation(n)[:size])

    def evaluate(self, full=True):
        """Evaluate every task on its validation split (its test split if it has none): a
        row of the history, which every choice (early stopping, the best checkpoint) reads.
        Unless ``full``, on the fixed subsample ``training.eval_size`` (a quick evaluation;
        the last evaluation of a fit is always full)."""
        tasks, sizes = {}, {}
        order = {task: k for k, task in enumerate(sorted(self.tasks))}  # (the streams' k)
        for task, data in self.tasks.items():
            x, y = data.split(data.eval_split)
            subset = None if full else self._quick_subset(order[task], len(y))
            if subset is not None:
                x, y = x[subset], y[subset]
            sizes[task] = len(y)
            tasks[task] = dict(evaluate(self.model, task, x, y, kind=data.kind,
                                        split=data.eval_split),
                               trained_steps=self.counters[task]["steps"],
                               trained_tokens=self.counters[task]["tokens"])
        row = {"run": self.label, "type": "eval", "step": self.step, "tasks": tasks}
        if not full and self.training.get("eval_size"):
            row["examples"] = sizes
        self.history.append(row)
        self._call("on_evaluate", row)
        self._write(row)
        return row

    def test(self, record=True):
        """Evaluate every task on its test split, once, at the end (nothing chooses on it):
        the ``test`` row, also in ``metrics.jsonl`` (and to plugins) — unless ``record`` is
        False: a resumed run whose metrics already hold it."""
        row = {"run": self.label, "type": "test", "step": self.step,
               "tasks": {task: evaluate(self.model, task, data.x_test, data.y_test,
                                        kind=data.kind, split="test", detail=True)
                         for task, data in self.tasks.items()}}
        if record:
            self._write(row)
        return row

    def _log_train(self):
        row = {"run": self.label, "type": "train", "step": self.step,
               "lr": self.optimizer.param_groups[0]["lr"], "tasks": {}}
        for task, (loss, score, count) in sorted(self._running.items()):
            row["tasks"][task] = {"loss": loss / count,
                                  TASK_KINDS[self.tasks[task].kind].score: score / count,
                                  **self.counters[task]}
        self._call("on_train_log", row)
        self._running = {}
        self._write(row)
        return row

    def log(self, row):
        """Append ``row`` (a dict of JSON values) to the run's ``metrics.jsonl``: what plugins
        use to record events beside the trainer's own rows."""
        self._write(row)

    def _write(self, row):
        self._call("on_log", row)
        if self.metrics_file is not None:
            with open(self.metrics_file, "a") as f:
                f.write(json.dumps(row) + "\n")

    def fit(self, on_checkpoint=None):
        """Train to the end of the schedule (from ``self.step``, so also after a resume)."""
        total = self.schedule.total_steps
        self._call("on_fit_start")
        bar = ProgressBar(total, self.label, start=self.step, enabled=self.progress)
        every = self.training["checkpoint_every"]
        status = ""
        while self.step < total and not self.should_stop:
            started = time.perf_counter()
            self.train_step()
            self.train_seconds += time.perf_counter() - started
            if self.step % self.training["log_every"] == 0 or self.step == total:
                status = format_scores(self._log_train()["tasks"])
            due = self.step % self.training["eval_every"] == 0 or self.step == total
            # stopped for good between evaluations: end on a full one (a pause does not, so
            # that the resumed run's history is the one an uninterrupted run would have)
            ended = not due and self.should_stop and self.stop_final
            if due or ended:
                status = format_scores(self.evaluate(full=self.step == total or ended)["tasks"],
                                       ("valid_", "test_"))
            if on_checkpoint and every and self.step % every == 0 and self.step < total:
                self._call("on_checkpoint")
                on_checkpoint(self)
            if interrupt.requested() and not self.should_stop and self.step < total:
                self.stop(f"interrupted ({interrupt.requested()})", final=False)  # a pause
            bar.update(self.step, status)
        if self.should_stop:
            self._write({"run": self.label, "type": "stopped", "step": self.step,
                         "reason": self.stop_reason})
        bar.close()
        self._call("on_fit_end")
        return self.history

    def end_stage(self, stage, tasks):
        """Close stage ``stage`` of a continual sequence, which trained ``tasks``."""
        self._call("on_stage_end", stage, tasks)

    # -- state for checkpoints --------------------------------------------------------------------
    def state_dict(self):
        """The loop's own state: step, history, counters, running statistics and the samplers
        (orders, positions, generators); the model, optimizer and plugins have their own."""
        return {"step": self.step, "label": self.label, "history": self.history,
                "train_seconds": self.train_seconds,
                "counters": self.counters, "running": self._running,
                "skipped": self.skipped, "consecutive_skips": self.consecutive_skips,
                "should_stop": self.should_stop and self.stop_final,
                "stop_reason": self.stop_reason if self.stop_final else None,
                "samplers": {t: s.state_dict() for t, s in self.samplers.items()}}

    def load_state_dict(self, state):
        self.step, self.history = state["step"], state["history"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.counters, self._running = state["counters"], state["running"]
        self.skipped = state.get("skipped", 0)  # (absent before the non-finite policy)
        self.consecutive_skips = state.get("consecutive_skips", 0)
        self.should_stop = state.get("should_stop", False)  # (absent before early stopping)
        self.stop_reason = state.get("stop_reason")
        for task, sampler in self.samplers.items():
            sampler.load_state_dict(state["samplers"][task])

    def plugin_states(self):
        """{plugin name: its state_dict()}, what the checkpoint's /plugins group holds."""
        return {plugin_name(p): p.state_dict() for p in self.plugins}

    def rng_states(self):
        return {"default": default_generator.state_dict(),
                "task_sampler": self.task_sampler.state_dict()}

    def load_state(self, checkpoint):
        """Restore from ``train.checkpoint.load(...)``'s result (model weights included).
        Plugins are restored before the random states: a plugin may build a model (LwF's
        teacher), which seeds the default generator. A state that does not fit (a shape, a
        dtype, a missing key, a sampler order that is no permutation) is a CheckpointError
        naming the file."""
        try:
            self._load_state(checkpoint)
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
            raise CheckpointError(f"{checkpoint.get('path', 'checkpoint')}: its state does not "
                                  f"fit this run: {one_line(error, 160)}") from None

    def _load_state(self, checkpoint):
        restore_model(self.model, checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler_state"])
        for plugin in self.plugins:
            saved = checkpoint["plugin_states"].get(plugin_name(plugin))
            if saved is not None:
                plugin.load_state_dict(saved)
            elif checkpoint.get("format_version", 2) >= 2 and plugin.kind != "callback":
                # a method's state (weights, Fisher, buffers) is in every checkpoint since
                # format 2: without it the run would go on from a fresh state, silently
                raise CheckpointError(f"{checkpoint.get('path', 'checkpoint')}: /plugins/"
                                      f"{plugin_name(plugin)}: missing; expected the state "
                                      f"of this run's {plugin.kind} method")
        default_generator.load_state_dict(checkpoint["rng_states"]["default"])
        if "task_sampler" in checkpoint["rng_states"]:  # absent in checkpoints before sampling
            self.task_sampler.load_state_dict(checkpoint["rng_states"]["task_sampler"])
        self.load_state_dict(checkpoint["trainer_state"])
