"""The errors a user can cause, one family: everything the library raises for bad input is a
``TinymtlError``, whose message is one line naming the thing (file, key, value, expected). The
command line prints that line and exits 2 (usage and configs) or 1 (files, data, runs); any
other exception is a bug, reported as such (``tinymtl --debug`` shows its traceback).

    TinymtlError
      ConfigError       a config (or a command's arguments) that does not fit the schema
      CheckpointError   a missing, unreadable, foreign or damaged checkpoint
      DataError         task data that is missing, unreadable or cannot give what is asked
      InputError        inputs to a command (predict's text, a device that is not there)
      DivergedError     training met a non-finite loss (``training.on_nonfinite: stop``)
      ArmsFailed        runs of a sweep, a seed study or a comparison failed (each named)

They subclass ValueError too, so code written against earlier versions still catches them.
"""


class TinymtlError(ValueError):
    """Something a user can get wrong; the message is one line."""

    exit_code = 1


class ConfigError(TinymtlError):
    """A config that does not fit the schema."""

    exit_code = 2


class CheckpointError(TinymtlError):
    """A missing, unreadable, foreign or damaged checkpoint."""


class DataError(TinymtlError):
    """Task data that is missing, unreadable, or cannot give what a config asks of it."""


class InputError(TinymtlError):
    """Inputs to a command that it cannot use."""


class DivergedError(TinymtlError):
    """A run stopped on a non-finite loss."""


class ArmsFailed(TinymtlError):
    """Some runs of a multi-run command (``runs.arms``) failed: ``failed`` is {run name: its
    one-line error}; the message names each, after ``where`` (what was written of the rest).
    Running the command again retries only the failed and unfinished runs."""

    def __init__(self, failed, where):
        self.failed = dict(failed)
        super().__init__("\n".join([f"{len(failed)} run(s) failed; {where}:"] + [
            f"  {name}: {error}" for name, error in failed.items()]))


def one_line(text, limit=80):
    """``text`` (user input echoed in a message) on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


__all__ = ["TinymtlError", "ConfigError", "CheckpointError", "DataError", "InputError",
           "DivergedError", "ArmsFailed", "Interrupted", "one_line"]


class Interrupted(TinymtlError):
    """Training stopped by Ctrl-C or SIGTERM (``train.interrupt``), its checkpoint saved."""

    exit_code = 130
