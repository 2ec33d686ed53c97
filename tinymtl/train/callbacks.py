"""Built-in callbacks: plugins that watch a run without changing what it learns.

List them in a config (``callbacks: [loss_spike]`` or ``callbacks: [{method: loss_spike,
factor: 5}]``) or pass them to ``Trainer(..., plugins=[LossSpike()])``.
"""

import collections
import statistics
import sys

from tinymtl.mtl.plugin import Plugin, register
from tinymtl.options import Float, Int


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
                    self.report(trainer, task, loss, median)
            recent.append(loss)

    def report(self, trainer, task, loss, median):
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
