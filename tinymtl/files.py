"""Writing files so that a crash never leaves a partial one: write a temporary file beside the
target, flush it to disk, then rename it over the target (a rename is atomic on POSIX)."""

import contextlib
import os
import pathlib
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path):
    """``with atomic_write(p) as temporary: write(temporary)`` — ``p`` appears only complete.

    On an exception the temporary file is removed and ``p`` (if it existed) is untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # the mode a plain open() would have given
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as temporary:
        pathlib.Path(temporary).write_text(text)
