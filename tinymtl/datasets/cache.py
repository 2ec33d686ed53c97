"""Generated data is cached as HDF5 with a manifest (generator, seed, sizes, sha256).

Where (``cache_dir``), whatever the current directory: ``$TINYMTL_DATA_DIR``; else a run
config's ``data.cache_dir`` (``location``); else ``datasets/cache`` of the checkout tinymtl is
imported from (an editable install of a clone); else the user's cache directory,
``$XDG_CACHE_HOME/tinymtl/datasets`` (``~/.cache/tinymtl/datasets``). A cached file is used only
if its arrays still hash to the manifest's sha256; otherwise it is regenerated, identically,
from the seed. Files are written atomically (``tinymtl.files``), so an interrupted write leaves
no partial file.
"""

import contextlib
import hashlib
import json
import os
import pathlib

import h5py
import numpy as np

from tinymtl.datasets.base import TaskData, array_digest
from tinymtl.files import atomic_write, write_text


CHECKOUT = pathlib.Path(__file__).resolve().parents[2]  # a clone's root, if this is one
_CHOSEN = []  # a run config's data.cache_dir, while it runs (``location``)


def cache_dir():
    """The datasets cache (module docstring), the same from any current directory."""
    if os.environ.get("TINYMTL_DATA_DIR"):
        return pathlib.Path(os.environ["TINYMTL_DATA_DIR"])
    if _CHOSEN:
        return pathlib.Path(_CHOSEN[-1])
    if (CHECKOUT / "datasets").is_dir() and (CHECKOUT / "pyproject.toml").is_file():
        return CHECKOUT / "datasets" / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "tinymtl" / "datasets"


@contextlib.contextmanager
def location(directory):
    """Within the block the cache is ``directory`` (a config's ``data.cache_dir``; None: the
    default), unless $TINYMTL_DATA_DIR says otherwise."""
    if directory:
        _CHOSEN.append(str(pathlib.Path(directory).expanduser()))
    try:
        yield
    finally:
        if directory:
            _CHOSEN.pop()


def spec_key(spec):
    """A short stable name for a dataset specification."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _digest(data):
    return array_digest(data.x_train, data.y_train, data.x_test, data.y_test)


def _write(path, arrays, manifest, **attrs):
    """Arrays (object arrays as strings) + JSON attributes, atomically; the manifest also
    as a readable .json beside the file."""
    path = pathlib.Path(path)
    with atomic_write(path) as temporary:
        with h5py.File(temporary, "w") as f:
            for key, value in arrays.items():
                if value.dtype == object:
                    f.create_dataset(key, data=value, dtype=h5py.string_dtype())
                else:
                    f.create_dataset(key, data=value, compression="gzip")
            f.attrs["manifest"] = json.dumps(manifest, sort_keys=True)
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value)
    write_text(path.with_suffix(".json"), json.dumps(manifest, indent=2, sort_keys=True))


def save(data, path):
    arrays = {key: getattr(data, key) for key in ("x_train", "y_train", "x_test", "y_test")}
    arrays["text_train"] = np.array(data.text_train, dtype=object)
    arrays["text_test"] = np.array(data.text_test, dtype=object)
    _write(path, arrays, data.manifest, classes=data.classes)


def _read(path):
    """(arrays, manifest, other JSON attributes) of a cached file; None if it is unreadable."""
    try:
        with h5py.File(path, "r") as f:
            arrays = {key: f[key][...] for key in f.keys()}
            attrs = {key: json.loads(value) for key, value in f.attrs.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # damaged: rebuild it
        return None
    manifest = attrs.pop("manifest", None)
    return None if manifest is None else (arrays, manifest, attrs)


def load(path):
    """The cached TaskData at ``path``, or None if it is missing, unreadable or fails its sha256."""
    stored = _read(path)
    if stored is None:
        return None
    arrays, manifest, attrs = stored
    try:
        data = TaskData(
            name=manifest["name"], classes=attrs["classes"],
            x_train=arrays["x_train"], y_train=arrays["y_train"],
            x_test=arrays["x_test"], y_test=arrays["y_test"],
            text_train=[t.decode() for t in arrays["text_train"]],
            text_test=[t.decode() for t in arrays["text_test"]], manifest=manifest)
    except KeyError:
        return None
    return data if _digest(data) == manifest.get("sha256") else None


def cache_path(spec):
    return cache_dir() / f"{spec['name']}-{spec_key(spec)}.h5"


def load_or_generate(spec, generate, use_cache=True):
    """Load the dataset described by ``spec`` from the cache, or ``generate()`` and cache it."""
    path = cache_path(spec)
    if use_cache and path.exists():
        data = load(path)
        if data is not None:
            return data
    data = generate()
    data.manifest = dict(spec, sha256=_digest(data), train_size=len(data.y_train),
                         test_size=len(data.y_test))
    if use_cache:
        save(data, path)
    return data


def load_or_generate_arrays(spec, generate, use_cache=True):
    """Like ``load_or_generate``, for a set of named arrays (``generate() -> {name: array}``),
    e.g. one image set that several tasks label differently. Returns (arrays, manifest)."""
    path = cache_path(spec)
    stored = _read(path) if use_cache and path.exists() else None
    if stored is not None:
        arrays, manifest, _ = stored
        if array_digest(*(arrays[k] for k in sorted(arrays))) == manifest.get("sha256"):
            return arrays, manifest
    arrays = generate()
    manifest = dict(spec, sha256=array_digest(*(arrays[k] for k in sorted(arrays))))
    if use_cache:
        _write(path, arrays, manifest)
    return arrays, manifest
