"""Built-in callbacks: plugins that watch a run and act on it between steps (never on the
gradients): a loss-spike warning, early stopping and the best checkpoint, both chosen on the
validation split.

List them in a config (``callbacks: [loss_spike]`` or ``callbacks: [{method: early_stopping,
patience: 3}]``) or pass them to ``Trainer(..., plugins=[EarlyStopping(patience=3)])``.
"""

import collections
import statistics
import sys
import time

from tinymtl.backend.memory import process_memory
from tinymtl.mtl.plugin import Plugin, register
from tinymtl.options import Bool, Duration, Float, Int, Str
from tinymtl.train.metrics import evaluated_split
from tinymtl.train.task_kinds import TASK_KINDS


@register
class LossSpike(Plugin):
    """Warns when a task's loss jumps above ``factor`` times its running median.

    A loss that is still finite but suddenly 10x its recent level is the usual prelude to
    divergence (a too-large learning rate, a bad batch, an exploding attention logit): NaN
    checks (``training.on_nonfinite``) only see the end of it. For each task, over its last
    ``window`` step losses ℓ₁..ℓ_w (once at least ``min_steps`` are in),

        spike  ⇔  ℓ_now > factor · median(ℓ₁..ℓ_w)

    (the median, not the mean, so one spike does not raise the bar for the next). Each spike
    is a ``metrics.jsonl`` row ``{"type": "loss_spike", ...}``; the first ``max_warnings`` also
    print one line on stderr. Training itself is not changed."""

    name = "loss_spike"
    OPTIONS = {
        "factor": Float(default=10.0, low=1.0, help="k: a loss above k x its running median "
                                                     "is a spike"),
        "window": Int(default=50, low=3, high=100_000, help="steps of the running median"),
        "min_steps": Int(default=10, low=1, high=100_000, help="steps seen before checking"),
        "max_warnings": Int(default=5, low=0, high=100_000,
                            help="spikes also printed on stderr (all are in metrics.jsonl)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.recent, self.spikes = {}, 0

    def on_after_optimizer_step(self, trainer, losses):
        for task, loss in losses.items():
            recent = self.recent.setdefault(task, collections.deque(maxlen=self.window))
            if len(recent) >= self.min_steps:
                median = statistics.median(recent)
                if median > 0 and loss > self.factor * median:
                    self.spike(trainer, task, loss, median)
            recent.append(loss)

    def report(self):
        return {"spikes": self.spikes}

    def spike(self, trainer, task, loss, median):
        self.spikes += 1
        step = trainer.step + 1  # the step being taken (as the trainer's rows count)
        trainer.log({"run": trainer.label, "type": "loss_spike", "step": step,
                     "task": task, "loss": loss, "median": median,
                     "ratio": round(loss / median, 3)})
        if self.spikes <= self.max_warnings:
            print(f"warning: step {step} ({trainer.label}): task {task}'s loss "
                  f"{loss:.4g} is {loss / median:.1f}x its running median {median:.4g}"
                  + (" (further spikes only in metrics.jsonl)"
                     if self.spikes == self.max_warnings else ""), file=sys.stderr)

    def state_dict(self):
        return {"recent": {task: list(values) for task, values in self.recent.items()},
                "spikes": self.spikes}

    def load_state_dict(self, state):
        self.recent = {task: collections.deque(values, maxlen=self.window)
                       for task, values in state["recent"].items()}
        self.spikes = int(state["spikes"])


class Monitor:
    """One number to choose by, read from an evaluation row (validation scores), and the
    best of it so far (``observe``):

        a task's name   that task's score (accuracy, or MAE: lower is better)
        mean            the mean over tasks of each score, signed so that higher is better
                        (accuracy, −MAE)
        delta_m         LibMTL's Δm% against ``reference`` ({task: score}; default: the scores
                        of the first evaluation), (100/T) Σ_t ± (M_t − M_t^ref) / M_t^ref

    Larger is better for ``mean`` and ``delta_m``; a task's own score follows its kind. An
    improvement is a gain of more than ``min_delta`` over the best so far."""

    def __init__(self, monitor="mean", min_delta=0.0):
        self.monitor, self.min_delta = monitor, min_delta
        self.reset()

    def reset(self):
        """Forget the best (a fresh fit: a continual sequence's next stage)."""
        self.best = self.best_step = self.reference = None

    def observe(self, trainer, row):
        """Read the row's value; True (and it becomes the best, at this step) if it improves
        on the best so far (a value undefined on a tiny split, None, never does)."""
        value = self.value(trainer, row)
        if value is None or not self.improved(trainer, value, self.best):
            return False
        self.best, self.best_step = value, trainer.step
        return True

    @staticmethod
    def scores(trainer, row):
        """{task: (its score in the row, its TaskKind)}: validation where there is one."""
        scores = {}
        for task, values in row["tasks"].items():
            kind = TASK_KINDS[trainer.tasks[task].kind]
            split = evaluated_split(row, task, kind.name)
            scores[task] = (values[f"{split}_{kind.score}"], kind)
        return scores

    def value(self, trainer, row):
        scores = self.scores(trainer, row)
        if self.monitor in scores:
            return scores[self.monitor][0]
        if any(v is None for v, _ in scores.values()):
            return None  # a score undefined on a tiny split: nothing to judge by
        if self.monitor == "mean":
            return sum(v if k.higher_is_better else -v for v, k in scores.values()) / len(scores)
        if self.reference is None:
            self.reference = {t: v for t, (v, _) in scores.items()}
        return 100 * sum((1 if k.higher_is_better else -1) * (v - self.reference[t])
                         / self.reference[t] if self.reference[t] else 0.0
                         for t, (v, k) in scores.items()) / len(scores)

    def higher_is_better(self, trainer):
        if self.monitor in trainer.tasks:
            return TASK_KINDS[trainer.tasks[self.monitor].kind].higher_is_better
        return True

    def improved(self, trainer, value, best):
        if best is None:
            return True
        gain = value - best if self.higher_is_better(trainer) else best - value
        return gain > self.min_delta

    def check(self, trainer):
        if self.monitor not in ("mean", "delta_m") and self.monitor not in trainer.tasks:
            raise ValueError(f"monitor = {self.monitor!r}: expected 'mean', 'delta_m' or one "
                             f"of the tasks ({', '.join(sorted(trainer.tasks))})")

    def state_dict(self):
        return {"best": self.best, "best_step": self.best_step, "reference": self.reference}

    def load_state_dict(self, state):
        self.best, self.best_step = state["best"], state["best_step"]
        self.reference = state["reference"]


MONITOR_OPTIONS = {
    "monitor": Str(default="mean", help="what to watch on the validation split: a task's "
                                        "name, mean (of the scores) or delta_m"),
    "min_delta": Float(default=0.0, low=0.0, help="a smaller gain is no improvement"),
}


@register
class EarlyStopping(Plugin):
    """Stop when the validation score has not improved for ``patience`` evaluations.

    After each evaluation (``training.eval_every``) the monitored value (``Monitor``) is
    compared with the best so far: a gain above ``min_delta`` makes it the best (and, with
    ``restore_best``, keeps a copy of the weights); otherwise the wait grows, and at
    ``patience`` training stops. At the end the best weights are put back, so what is tested
    and saved is the model of the best validation score. Its state (best value and step,
    wait, the best weights) is in the checkpoint: a resumed run stops where it would have."""

    name = "early_stopping"
    OPTIONS = dict(MONITOR_OPTIONS, **{
        "patience": Int(default=5, low=1, high=100_000,
                        help="evaluations without improvement before stopping"),
        "restore_best": Bool(default=True, help="end with the weights of the best evaluation"),
    })

    def __init__(self, **options):
        super().__init__(**options)
        self.watch = Monitor(self.monitor, self.min_delta)
        self.stopped_step = self.best_weights = None
        self.wait = 0

    def setup(self, trainer):
        self.watch.check(trainer)

    def on_fit_start(self, trainer):
        if trainer.step == 0:  # a fresh fit (a continual sequence's next stage): start over
            self.watch.reset()
            self.stopped_step = self.best_weights = None
            self.wait = 0

    def on_evaluate(self, trainer, row):
        if self.watch.observe(trainer, row):
            self.wait = 0
            if self.restore_best:
                self.best_weights = {k: v.copy() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience and not trainer.should_stop:
            self.stopped_step = trainer.step
            trainer.stop(f"early stopping: {self.monitor} has not improved for {self.wait} "
                         f"evaluations (best {self.watch.best:.4g} at step "
                         f"{self.watch.best_step})")

    def on_fit_end(self, trainer):
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def report(self):
        """What the run's summary says of it."""
        return {"monitor": self.monitor, "best": self.watch.best,
                "best_step": self.watch.best_step, "stopped_at": self.stopped_step,
                "restored_best": bool(self.restore_best and self.best_weights is not None)}

    def state_dict(self):
        return dict(self.watch.state_dict(), wait=self.wait, stopped_step=self.stopped_step,
                    best_weights=self.best_weights or {})

    def load_state_dict(self, state):
        self.watch.load_state_dict(state)
        self.wait, self.stopped_step = state["wait"], state["stopped_step"]
        self.best_weights = dict(state["best_weights"]) or None


@register
class BestCheckpoint(Plugin):
    """Keep the checkpoint of the best validation score: ``best.h5`` in the run directory,
    written (atomically, like every checkpoint) after each evaluation that improves the
    monitored value (``Monitor``). Choosing it never looks at the test split."""

    name = "best_checkpoint"
    OPTIONS = dict(MONITOR_OPTIONS, filename=Str(default="best.h5",
                                                 help="its name in the run directory"))

    def __init__(self, **options):
        super().__init__(**options)
        if "/" in self.filename or not self.filename.endswith(".h5") or \
                self.filename == "checkpoint.h5":
            raise ValueError(f"{self.name}.filename = {self.filename!r}: expected a file name "
                             f"ending in .h5, in the run directory, other than checkpoint.h5")
        self.watch = Monitor(self.monitor, self.min_delta)

    def setup(self, trainer):
        self.watch.check(trainer)

    def on_fit_start(self, trainer):
        if trainer.step == 0:  # a fresh fit (a continual sequence's next stage): start over
            self.watch.reset()

    def on_evaluate(self, trainer, row):
        if self.watch.observe(trainer, row):
            trainer.save_checkpoint(self.filename)

    def report(self):
        return {"monitor": self.monitor, "best": self.watch.best,
                "best_step": self.watch.best_step, "file": self.filename}

    def state_dict(self):
        return self.watch.state_dict()

    def load_state_dict(self, state):
        self.watch.load_state_dict(state)


@register
class TimeBudget(Plugin):
    """Pause training cleanly when this process has trained for ``max_time`` (a job's time
    slot): at a step boundary, after an evaluation, with a checkpoint from which
    ``tinymtl run CONFIG --resume`` continues bit for bit (with a fresh budget). Set it as
    ``training.max_time: 45m`` or as a callback."""

    name = "time_budget"
    OPTIONS = {"max_time": Duration(required=True, help="how long this process may train")}

    def __init__(self, **options):
        super().__init__(**options)
        self.started = None

    def on_fit_start(self, trainer):
        self.started = time.monotonic()

    def on_after_optimizer_step(self, trainer, losses):
        used = time.monotonic() - self.started
        if used >= self.max_time and not trainer.should_stop:
            trainer.stop(f"time budget: {used:.0f} s of training.max_time = "
                         f"{self.max_time:.0f} s used", final=False)


@register
class MemoryMonitor(Plugin):
    """Every ``every`` steps: the process's resident memory, its peak and (on a GPU) CuPy's
    pool, as a ``metrics.jsonl`` row ``{"type": "memory", ...}`` and in the summary. A leak
    shows as memory that only grows: when each of the last ``window`` samples is above the one
    before and together they grew by more than ``leak_mib``, one warning line says so."""

    name = "memory_monitor"
    OPTIONS = {
        "every": Int(default=50, low=1, high=10 ** 9, help="steps between samples"),
        "window": Int(default=10, low=2, high=10_000, help="samples a leak must grow over"),
        "leak_mib": Float(default=64.0, low=0.0, help="growth over the window that warns"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.samples, self.last, self.warned = [], None, False

    def on_after_optimizer_step(self, trainer, losses):
        if (trainer.step + 1) % self.every:
            return
        self.last = usage = process_memory()
        self.samples = (self.samples + [usage["rss"]])[-(self.window + 1):]
        trainer.log({"run": trainer.label, "type": "memory", "step": trainer.step + 1,
                     **_in_mib(usage)})
        growing = len(self.samples) > self.window and all(
            b > a for a, b in zip(self.samples, self.samples[1:]))
        grown = (self.samples[-1] - self.samples[0]) / 2 ** 20
        if growing and grown > self.leak_mib and not self.warned:
            self.warned = True
            print(f"warning: step {trainer.step + 1} ({trainer.label}): resident memory grew "
                  f"at each of the last {self.window} samples, by {grown:.0f} MiB in all (a "
                  f"leak?)", file=sys.stderr)

    def report(self):
        if self.last is None:
            return None
        return dict(_in_mib(self.last), leak_warning=self.warned)

    def state_dict(self):
        return {"samples": list(self.samples), "warned": self.warned}

    def load_state_dict(self, state):
        self.samples, self.warned = list(state["samples"]), bool(state["warned"])


def _in_mib(usage):
    """{'rss_mib': 123.4, ...} for ``process_memory()``'s bytes."""
    return {f"{key}_mib": round(value / 2 ** 20, 1) for key, value in usage.items()}
