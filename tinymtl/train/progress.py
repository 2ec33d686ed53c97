"""A progress bar on stderr: step, speed, ETA and a short status (e.g. per-task loss/accuracy).

On a terminal it redraws one line; otherwise (logs, CI) it prints a line every 10 %.
"""

import sys
import time


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    def __init__(self, total, label="", start=0, stream=None, enabled=True, width=24):
        self.total, self.label, self.start_step = total, label, start
        self.stream = stream or sys.stderr
        self.enabled, self.width = enabled, width
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self.last_decile = -1

    def update(self, step, status=""):
        if not self.enabled:
            return
        done = step - self.start_step
        elapsed = time.perf_counter() - self.started
        speed = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / speed if speed > 0 else 0.0
        fraction = step / self.total if self.total else 1.0
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        line = (f"{self.label} [{bar}] {step}/{self.total} {speed:6.1f} step/s "
                f"elapsed {_clock(elapsed)} eta {_clock(eta)} {status}")
        if self.interactive:
            self.stream.write("\r" + line[:200].ljust(120))
            self.stream.flush()
        elif int(fraction * 10) > self.last_decile or step == self.total:
            self.last_decile = int(fraction * 10)
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self):
        if self.enabled and self.interactive:
            self.stream.write("\n")
            self.stream.flush()
