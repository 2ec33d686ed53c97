"""What a run does when training meets NaN or infinity: the non-finite policy, a plugin.

The trainer finds the faults — a step's loss that is not finite (checked at every step, before
backward, so the weights are untouched), and every ``check_every`` steps a gradient (before the
update) or a weight (after it) that is not — and writes each as a ``metrics.jsonl`` row
``{"type": "nonfinite", ...}``. This plugin decides what follows:

    stop   end the run: a one-line DivergedError naming the step and the culprit; the weights
           and the last checkpoint stay as they were (the default)
    skip   drop the step (no update; the schedule moves on) and count it; more than
           ``max_skips`` in a row stop the run all the same

A weight that is no longer finite is past saving whatever the policy: the update has spread it.

From a config: ``training.on_nonfinite``, ``training.max_skips``, ``training.check_every``;
from Python: ``Trainer(..., plugins=[NonFinitePolicy(policy="skip", max_skips=3)])``.
"""

from tinymtl.errors import DivergedError
from tinymtl.mtl.plugin import Plugin, register
from tinymtl.options import Choice, Int


@register
class NonFinitePolicy(Plugin):
    """Stop, or skip the step, when a loss or gradient is NaN or infinite (module docstring)."""

    name = "nonfinite"
    OPTIONS = {
        "policy": Choice(("stop", "skip"), default="stop",
                         help="a NaN/inf loss or gradient: stop the run, or drop the step"),
        "max_skips": Int(default=10, low=1,
                         help="skipped steps in a row that stop the run all the same"),
        "check_every": Int(default=10, low=1,
                           help="steps between checks of every gradient and weight"),
    }
    ALIASES = {"on_nonfinite": "policy", "max_skips": "max_skips", "check_every": "check_every"}

    @classmethod
    def from_training(cls, training):
        """The policy a config's ``training`` section sets (its defaults where it is silent)."""
        return cls(**{option: training[key] for key, option in cls.ALIASES.items()
                      if training.get(key) is not None})

    def checks(self, trainer):
        """Whether the step being taken checks every gradient and weight."""
        return (trainer.step + 1) % self.check_every == 0

    def on_nonfinite(self, trainer, culprit):
        """A non-finite loss or gradient before the update (``culprit``: (what, value)):
        raise DivergedError to stop, or count the skip (``trainer.skipped``, and in a row)
        and return to have the trainer drop the step."""
        if self.policy == "stop":
            raise self.diverged(trainer, culprit, "training.on_nonfinite is stop")
        trainer.skipped += 1
        trainer.consecutive_skips += 1
        if trainer.consecutive_skips > self.max_skips:
            raise self.diverged(trainer, culprit, f"{trainer.consecutive_skips} steps in a row "
                                                  f"were skipped (training.max_skips = "
                                                  f"{self.max_skips})")

    @staticmethod
    def diverged(trainer, culprit, why):
        """The one-line error that ends a diverged run, with its event for the summary."""
        what, value = culprit
        error = DivergedError(
            f"training diverged at step {trainer.step + 1} ({trainer.label}): {what} is "
            f"{value!r} and {why}; the last checkpoint is as it was. Lower training.lr, set "
            f"training.grad_clip, or training.on_nonfinite: skip")
        error.event = {"step": trainer.step + 1, "run": trainer.label, "what": what,
                       "value": repr(value), "why": why}
        return error
