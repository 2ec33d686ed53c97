"""TensorBoard: every number a run writes to ``metrics.jsonl`` also goes to TensorBoard event
files, through ``tensorboardX`` (an optional extra: ``pip install -e ".[tensorboard]"``).

One rule, so nothing is forgotten: each row the trainer or a plugin logs (``Plugin.on_log``)
becomes scalars named by the row's type and the path to each number in it,

    {"type": "train", "step": 200, "lr": 0.001, "tasks": {"kg": {"loss": 0.31, "weight": 1.2}}}
      → train/lr = 0.001, train/tasks/kg/loss = 0.31, train/tasks/kg/weight = 1.2   at step 200

so the task losses and scores, learning rates, task weights (weighting), gradient cosines,
conflict rates and norms (gradient surgery), validation and test metrics (eval, test rows) and
memory (``memory_monitor``) all appear, and so will whatever a new plugin logs. Each trainer
(the multi-task run, a continual stage) is one TensorBoard run: ``<run dir>/tensorboard/
<label>/``, so ``tensorboard --logdir runs/`` shows every run side by side.

A resumed run starts a new event file with ``purge_step`` at the resumed step: TensorBoard
drops what the interrupted file held beyond it, so the curves show one run, as it ended.
"""

import importlib.util
import math
import os
import re
import time

from tinymtl.mtl.plugin import Plugin, register
from tinymtl.options import Float, Str

TAG_UNSAFE = re.compile(r"[^-.\w]")  # what TensorBoard's tags may not hold
SKIPPED_KEYS = {"run", "type", "step"}  # a row's identity, not a measurement


def scalars(row, prefix=None):
    """[(tag, value)] of every finite number in ``row`` (nested dicts joined by '/'),
    under ``prefix`` (default: the row's type). Booleans and strings are not scalars; a
    character TensorBoard does not take in a tag becomes '_' (a task pair 'a|b': 'a_b')."""
    prefix = prefix or row.get("type", "row")
    found = []
    for key, value in row.items():
        if key in SKIPPED_KEYS and prefix == row.get("type", "row"):
            continue
        tag = prefix + "/" + TAG_UNSAFE.sub("_", str(key))
        if isinstance(value, dict):
            found += scalars(value, tag)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            found.append((tag, value))
    return found


MISSING = "it needs the tensorboardX package: pip install -e \".[tensorboard]\""


@register
class TensorBoard(Plugin):
    """TensorBoard event files holding every number of ``metrics.jsonl`` (tensorboardX).

    Each row becomes scalars (module docstring). ``logdir``: where the event files go
    (default: ``tensorboard/`` in the run directory; a trainer without one needs it)."""

    name = "tensorboard"
    OPTIONS = {
        "logdir": Str(help="the event files' folder (default: <run dir>/tensorboard)"),
        "flush_secs": Float(default=10.0, low=0.1, high=3600.0,
                            help="seconds between writes to disk"),
    }

    @classmethod
    def missing(cls):
        return None if importlib.util.find_spec("tensorboardX") else MISSING

    def __init__(self, **options):
        super().__init__(**options)
        if self.missing():
            raise ImportError(f"tensorboard: {MISSING}")
        from tensorboardX import SummaryWriter

        self.SummaryWriter = SummaryWriter
        self.writers = {}  # {trainer label: SummaryWriter}

    def directory(self, trainer):
        root = self.logdir
        if not root:
            if trainer.metrics_file is None:
                raise ValueError("tensorboard: this trainer has no run directory; give "
                                 "TensorBoard(logdir=...)")
            root = os.path.join(os.path.dirname(os.path.abspath(trainer.metrics_file)),
                                "tensorboard")
        return os.path.join(root, trainer.label)

    def writer(self, trainer, resuming=False):
        """The trainer's writer, opened once. A fit that starts from a resumed step
        (``resuming``) purges what an interrupted run wrote beyond it."""
        if trainer.label not in self.writers:
            purge = trainer.step if resuming and trainer.step > 0 else None
            # tensorboardX names a file by the second it opens and truncates one of the same
            # name: the nanoseconds keep two files of one second apart, in the order opened
            self.writers[trainer.label] = self.SummaryWriter(
                self.directory(trainer), flush_secs=self.flush_secs, purge_step=purge,
                filename_suffix=f".{time.time_ns()}")
        return self.writers[trainer.label]

    def on_fit_start(self, trainer):
        self.writer(trainer, resuming=True)

    def on_log(self, trainer, row):
        writer = self.writer(trainer)
        step = row.get("step", trainer.step)
        for tag, value in scalars(row):
            writer.add_scalar(tag, value, step)
        if row.get("type") == "test":  # a run's last row
            self.close(trainer)

    def on_fit_end(self, trainer):
        self.close(trainer)  # (the test row, after it, opens a file of its own)

    def close(self, trainer):
        """Write out what is queued (tensorboardX writes from a thread) and close the file."""
        writer = self.writers.pop(trainer.label, None)
        if writer is not None:
            writer.close()

    def report(self):
        return {"logdir": self.logdir or "tensorboard/ in the run directory"}
