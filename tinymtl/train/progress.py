"""The progress bar on stderr: tqdm's (step, speed, ETA), with the run's status (per-task
loss/accuracy) beside it.

On a terminal tqdm redraws one line, fitted to the terminal's width; otherwise (logs, CI) a
line in tqdm's format is printed every 10 %, instead of a line of carriage returns, and also
when the count moved and the last line is a minute old (a sweep's arm finishing after half an
hour is news in a log long before the next 10 %).
"""

import contextlib
import sys
import time

from tqdm import tqdm

LOG_FORMAT = "{desc} {n_fmt}/{total_fmt} {rate_fmt} elapsed {elapsed} eta {remaining}"  # (logs)
LOG_EVERY_SECONDS = 60  # (logs: besides every 10 %, a line when the count moved after this)
_WHERE = []  # what a multi-run command is running now ("arm pcgrad, seed 2 — run 7 of 21")


class RunCounter:
    """Which run of a multi-run command (seeds, comparisons) this is, and how long the rest
    will take: ``with counter.run("arm pcgrad, seed 2"):`` puts "arm pcgrad, seed 2 — run 7 of
    21, ~12 min left" before every progress bar inside it (the estimate: the mean time of the
    runs done so far, times the runs left, this one included)."""

    def __init__(self, total):
        self.total, self.done, self.seconds = total, 0, 0.0

    def describe(self, what):
        left = ""
        if self.done:
            remaining = self.seconds / self.done * (self.total - self.done)
            left = f", ~{_duration(remaining)} left"
        return f"{what} — run {self.done + 1} of {self.total}{left}"

    @contextlib.contextmanager
    def run(self, what):
        started = time.perf_counter()
        _WHERE.append(self.describe(what))
        try:
            yield
        finally:
            _WHERE.pop()
            self.done += 1
            self.seconds += time.perf_counter() - started


def phase(text, enabled=True, stream=None):
    """One line on a terminal (stderr) for a step of a run that takes seconds without a bar of
    its own (loading data, the baselines' setup, the test evaluation, the round-trip check).
    Not in logs: there a refusal stays the one line it is, and the 10 % lines show progress."""
    stream = stream or sys.stderr
    if enabled and hasattr(stream, "isatty") and stream.isatty():
        where = f"{' · '.join(_WHERE)} · " if _WHERE else ""
        print(f"{where}{text}", file=stream, flush=True)


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" \
        if seconds < 5400 else f"{seconds / 3600:.1f} h"


class ProgressBar:
    """``width``: the line's width on a terminal (default: the terminal's, read again at each
    redraw, so a resized window fits; a status too long for it is cut, never wrapped).
    ``unit``: what is counted (training steps; a sweep's arms)."""

    def __init__(self, total, label="", start=0, stream=None, enabled=True, width=None,
                 unit="step"):
        self.stream = stream or sys.stderr
        label = " · ".join(_WHERE + [label]) if _WHERE else label
        self.total, self.label, self.start, self.enabled = total, label, start, enabled
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started, self.last_decile, self.unit = time.perf_counter(), -1, unit
        self.last_line, self.last_step = self.started, start
        self.bar = tqdm(total=total, initial=start, desc=label, unit=unit, file=self.stream,
                        dynamic_ncols=width is None, ncols=width,
                        disable=not (enabled and self.interactive))

    def update(self, step, status=""):
        if not self.enabled:
            return
        if self.interactive:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(step - self.bar.n)
            return
        fraction = step / self.total if self.total else 1.0
        now = time.perf_counter()
        if int(fraction * 10) > self.last_decile or step == self.total or (
                step != self.last_step and now - self.last_line >= LOG_EVERY_SECONDS):
            self.last_decile, self.last_line, self.last_step = int(fraction * 10), now, step
            elapsed = now - self.started
            rate = (step - self.start) / elapsed if elapsed > 0 else None
            line = tqdm.format_meter(step, self.total, elapsed, prefix=self.label,
                                     unit=self.unit, rate=rate, bar_format=LOG_FORMAT,
                                     initial=self.start)
            self.stream.write(f"{line} {status}".rstrip() + "\n")
            self.stream.flush()

    def close(self):
        self.bar.close()
