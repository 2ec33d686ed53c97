"""Ctrl-C and SIGTERM during training: finish the step, save, say how to go on.

A long run stopped by Ctrl-C (SIGINT) or by a job scheduler's SIGTERM should lose at most the
step in flight, not everything since the last periodic checkpoint. ``handled()`` (the CLI wraps
every training command in it) replaces both signals' handlers: the first signal only sets a
flag; the training loops ask ``requested()`` after each step and, when set, stop as a time
budget does — a checkpoint written atomically, ``summary.json`` saying the run is paused and
the exact command that resumes it. A second signal aborts at once (KeyboardInterrupt): the
checkpoint already on disk stays intact (``files.atomic_write``).
"""

import contextlib
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received = {"name": None}


def requested():
    """The name of the signal that asked training to stop ('SIGINT', 'SIGTERM'), or None."""
    return _received["name"]


def _handler(signum, frame):
    if _received["name"] is not None:  # the second one: abort now
        raise KeyboardInterrupt
    _received["name"] = signal.Signals(signum).name
    print(f"\n{_received['name']}: finishing this step, then saving a checkpoint "
          f"(again to abort at once; the last checkpoint stays intact)", file=sys.stderr,
          flush=True)


@contextlib.contextmanager
def handled():
    """Within the block the first SIGINT/SIGTERM asks the running loop to stop after its step
    (``requested``), a second aborts; outside it, the handlers are as they were."""
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _received["name"] = None
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _received["name"] = None
