"""Whether operations record a graph: ``no_grad()`` turns recording off (evaluation, updates)."""

import contextlib

_state = {"enabled": True}


def is_grad_enabled():
    return _state["enabled"]


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager and decorator that sets gradient recording on or off, then restores it."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.previous = _state["enabled"]
        _state["enabled"] = self.mode

    def __exit__(self, *exc):
        _state["enabled"] = self.previous
        return False


class no_grad(set_grad_enabled):
    """``with no_grad():`` or ``@no_grad()``: compute without recording a graph."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Turn recording back on inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


