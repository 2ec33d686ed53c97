"""The progress bar on stderr: tqdm's (step, speed, ETA), with the run's status (per-task
loss/accuracy) beside it.

On a terminal tqdm redraws one line, fitted to the terminal's width; otherwise (logs, CI) a
line in tqdm's format is printed every 10 %, instead of a line of carriage returns.
"""

import sys
import time

from tqdm import tqdm

LOG_FORMAT = "{desc} {n_fmt}/{total_fmt} {rate_fmt} elapsed {elapsed} eta {remaining}"


class ProgressBar:
    def __init__(self, total, label="", start=0, stream=None, enabled=True):
        self.stream = stream or sys.stderr
        self.total, self.label, self.start, self.enabled = total, label, start, enabled
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started, self.last_decile = time.perf_counter(), -1
        self.bar = tqdm(total=total, initial=start, desc=label, unit="step", file=self.stream,
                        dynamic_ncols=True, disable=not (enabled and self.interactive))

    def update(self, step, status=""):
        if not self.enabled:
            return
        if self.interactive:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(step - self.bar.n)
            return
        fraction = step / self.total if self.total else 1.0
        if int(fraction * 10) > self.last_decile or step == self.total:
            self.last_decile = int(fraction * 10)
            elapsed = time.perf_counter() - self.started
            rate = (step - self.start) / elapsed if elapsed > 0 else None
            line = tqdm.format_meter(step, self.total, elapsed, prefix=self.label,
                                     unit="step", rate=rate, bar_format=LOG_FORMAT,
                                     initial=self.start)
            self.stream.write(f"{line} {status}".rstrip() + "\n")
            self.stream.flush()

    def close(self):
        self.bar.close()
