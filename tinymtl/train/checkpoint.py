"""Checkpoints: one HDF5 file, readable with plain h5py, no pickle (layout in
docs/checkpoint-format.md).

    /                 attrs: format, format_version, tinymtl_version, step, config (JSON)
    /model/<name>     every parameter and buffer, by its state_dict name
    /optimizer        attrs: param_groups (JSON), scalars (JSON); /optimizer/state/<i>/<key>
    /lr_scheduler     attrs: state (JSON)
    /rng              attrs: one JSON state per generator
    /trainer          the loop's state_dict (step, history, counters, samplers), stored as
                      every state is: attrs state (JSON, arrays replaced by {"$array": path})
                      and the arrays as datasets at their path (/trainer/samplers/<task>/order)
    /plugins/<name>   each plugin's state_dict, stored the same way
    /data/<task>      attrs: manifest (JSON: generator, seed, sizes, sha256)

Format 1 (before plugins) kept the trainer's arrays apart (/trainer/arrays/sampler_order.<task>),
the loss weighting's and gradient surgery's states inside /trainer's state, and a continual
method's in /trainer's state and arrays; ``load`` reads those as today's states
(``_upgrade_format1``).

``save_private``/``load_private`` write and read the small companion format: only the
task-private weights (heads, adapters, gates) of some tasks, to be loaded onto a shared backbone.

Saving writes a temporary file beside the target, flushes it, then renames it over the target:
a crash mid-save leaves the previous checkpoint intact.
"""

import hashlib
import json
import pathlib
import zlib

import h5py
import numpy as np

from tinymtl import __version__
from tinymtl.backend import to_numpy
from tinymtl.errors import CheckpointError  # a missing, unreadable, foreign or damaged file
from tinymtl.files import atomic_write

FORMAT = "tinymtl.checkpoint"
FORMAT_VERSION = 3
PRIVATE_FORMAT = "tinymtl.private"

# The seal (format 3): HDF5 lets a file start with a "user block" it never reads. We write the
# sha256 of everything after it there, and check it before HDF5 parses a byte: a damaged file
# is refused whole (the HDF5 library can crash on a corrupt file rather than raise).
USERBLOCK = 512
SEAL = b"tinymtl sealed hdf5\nsha256 "


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(USERBLOCK)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest().encode()


def seal(path):
    """Write the sha256 of the file after its user block into the user block."""
    block = SEAL + _digest(path) + b"\n"
    with open(path, "r+b") as f:
        f.write(block.ljust(USERBLOCK, b"\0"))


def check_seal(path, what="checkpoint"):
    """Refuse a sealed file whose bytes changed (CheckpointError naming it); True when it is
    sealed and intact, False for an unsealed file (written before format 3)."""
    with open(path, "rb") as f:
        block = f.read(USERBLOCK)
    if not block.startswith(SEAL):
        return False
    stored = block[len(SEAL):].split(b"\n", 1)[0]
    if stored != _digest(path):
        raise CheckpointError(f"{path}: its sha256 does not match the one written with it "
                              f"(the file is damaged or truncated); expected an intact {what}")
    return True


def save(path, *, model_state, optimizer_state=None, lr_scheduler_state=None, rng_states=None,
         trainer_state=None, plugin_states=None, config=None, manifests=None, step=0):
    """Write a checkpoint atomically; returns its size in bytes."""
    path = pathlib.Path(path)
    with atomic_write(path) as temporary:
        with h5py.File(temporary, "w", userblock_size=USERBLOCK) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["tinymtl_version"] = __version__
            f.attrs["step"] = int(step)
            f.attrs["config"] = json.dumps(config or {}, sort_keys=True)
            model = f.create_group("model")
            for name, value in model_state.items():
                _write_array(model, name, value)
            if optimizer_state is not None:
                _write_optimizer(f.create_group("optimizer"), optimizer_state)
            f.create_group("lr_scheduler").attrs["state"] = json.dumps(lr_scheduler_state or {})
            rng = f.create_group("rng")
            for name, state in (rng_states or {}).items():
                rng.attrs[name] = json.dumps(state)
            _write_state(f.create_group("trainer"), trainer_state or {})
            plugins = f.create_group("plugins")
            for name, state in (plugin_states or {}).items():
                _write_state(plugins.create_group(_escape(name)), state)
            data = f.create_group("data")
            for task, manifest in (manifests or {}).items():
                data.create_group(task).attrs["manifest"] = json.dumps(manifest, sort_keys=True)
        seal(temporary)
    return path.stat().st_size


def _write_optimizer(group, state):
    scalars = {}
    groups = group.create_group("state")
    for index, entry in state["state"].items():
        entry_group = groups.create_group(str(index))
        for key, value in entry.items():
            if hasattr(value, "shape") and np.ndim(value) > 0:
                _write_array(entry_group, key, value)
            else:
                scalars.setdefault(str(index), {})[key] = _plain(value)
    group.attrs["param_groups"] = json.dumps([{k: _plain(v) for k, v in g.items()}
                                              for g in state["param_groups"]])
    group.attrs["scalars"] = json.dumps(scalars)


# -- arrays, each with its checksum -----------------------------------------------------------
def _write_array(group, name, value):
    """A dataset with the CRC-32 of its bytes as the attribute ``crc32`` (verified on load)."""
    array = np.ascontiguousarray(to_numpy(value))
    dataset = group.create_dataset(name, data=array)
    dataset.attrs["crc32"] = zlib.crc32(array.tobytes())


def _read_array(dataset):
    """A dataset's array, checked against its ``crc32`` (written since format 2; older files
    have none and load unchecked): a flipped bit is reported with the dataset's path."""
    if not isinstance(dataset, h5py.Dataset):
        raise CheckpointError(f"{dataset.file.filename}: {dataset.name}: a group; expected a "
                              f"dataset (an array)")
    array = dataset[...]
    if "crc32" in dataset.attrs and \
            zlib.crc32(np.ascontiguousarray(array).tobytes()) != int(dataset.attrs["crc32"]):
        raise CheckpointError(f"{dataset.file.filename}: {dataset.name}: its checksum does "
                              f"not match (the file is damaged)")
    return array


# -- a state_dict: JSON values and arrays, nested ------------------------------------------------
def _escape(key):
    """A dict key as an HDF5 name: '/' separates groups there, so it is escaped (and '%')."""
    return str(key).replace("%", "%25").replace("/", "%2F")


def _write_state(group, state):
    """One state_dict into ``group``: its arrays as datasets at their path of keys (and list
    indices), the rest as JSON in attrs['state'] with {"$array": path} where an array was."""
    def split(value, path):
        if isinstance(value, dict):
            return {str(k): split(v, path + [_escape(k)]) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [split(v, path + [str(k)]) for k, v in enumerate(value)]
        if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value,
                                                                                  np.generic):
            name = "/".join(path)
            _write_array(group, name, value)
            return {"$array": name}
        return _plain(value)

    group.attrs["state"] = json.dumps(split(state, []), sort_keys=True)


def _read_state(group):
    def join(value):
        if isinstance(value, dict):
            if set(value) == {"$array"}:
                return _read_array(group[value["$array"]])
            return {k: join(v) for k, v in value.items()}
        if isinstance(value, list):
            return [join(v) for v in value]
        return value

    return join(json.loads(group.attrs["state"]))


def _plain(value):
    """JSON-able form of an optimizer hyper-parameter (tuples become lists)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read(path, fmt, what, read):
    """``read(f)`` on the open HDF5 file at ``path``, after checking it is a ``fmt`` file this
    version can read; every failure is one CheckpointError naming the file (``what`` it is)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        sealed = path.is_file() and check_seal(path, what)
        with h5py.File(path, "r") as f:
            if not sealed and int(f.attrs.get("format_version", 0)) >= 3:
                raise CheckpointError(f"{path}: its seal (the first {USERBLOCK} bytes) is "
                                      f"damaged; expected an intact {what}")
            if f.attrs.get("format") != fmt:
                raise CheckpointError(f"{path}: not a tinymtl {what} (no format attribute "
                                      f"{fmt!r})")
            if int(f.attrs["format_version"]) > FORMAT_VERSION:
                raise CheckpointError(f"{path}: {what} format version "
                                      f"{int(f.attrs['format_version'])} is newer than this "
                                      f"tinymtl reads ({FORMAT_VERSION})")
            return read(f)
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            RuntimeError) as error:  # a damaged or reshaped file: whatever h5py or JSON says
        detail = " ".join(str(error).split())[:120]
        raise CheckpointError(f"{path}: cannot read {what}; the file is damaged or not one "
                              f"this version wrote ({type(error).__name__}: {detail})") from None


LAYOUT = ("model", "lr_scheduler", "rng", "trainer", "data")  # groups every checkpoint has


def _check_layout(f):
    """Every group a checkpoint must have is there and is a group; the rest is checked as it
    is read (``_read_array``: a dataset where an array should be, with its checksum)."""
    for name in LAYOUT + tuple(n for n in ("optimizer", "plugins") if n in f):
        if name not in f:
            raise CheckpointError(f"{f.filename}: /{name}: missing; expected a group")
        if not isinstance(f[name], h5py.Group):
            raise CheckpointError(f"{f.filename}: /{name}: a dataset; expected a group")


def _check_config(loaded):
    """The stored config, re-checked by the validator a YAML file goes through (and returned
    as it gives it back): a checkpoint whose config was edited or damaged is refused before
    anything is built from it."""
    from tinymtl.errors import ConfigError
    from tinymtl.train.config import validate

    if not loaded["config"]:  # saved from the Python API without a config
        return loaded["config"]
    raw = loaded["config"]
    if loaded["format_version"] < 3 and isinstance(raw.get("data"), dict) and \
            "valid_fraction" not in raw["data"]:  # runs before validation splits had none
        raw = dict(raw, data=dict(raw["data"], valid_fraction=0.0))
    try:
        config = validate(raw, source=f"{loaded['path']}: /config")
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    stages = (config.get("continual") or {}).get("stages")
    # a pretraining run's one data set is its pool of unlabelled graphs
    expected = {"pool"} if "pretraining" in config else set(stages or config["tasks"])
    if set(loaded["manifests"]) != expected:
        raise CheckpointError(f"{loaded['path']}: /data: has {sorted(loaded['manifests'])}; "
                              f"expected a manifest for each task of its config, "
                              f"{sorted(expected)}")
    return config


def load(path):
    """Everything a checkpoint holds, as plain Python objects and NumPy arrays, its layout,
    checksums and config checked (states are checked by what loads them: the model, the
    optimizer, the samplers, each plugin)."""
    loaded = _read(path, FORMAT, "checkpoint", lambda f: _check_layout(f) or {
        "path": str(path),
        "format_version": int(f.attrs["format_version"]),
        "step": int(f.attrs["step"]),
        "tinymtl_version": str(f.attrs["tinymtl_version"]),
        "config": json.loads(f.attrs["config"]),
        "model_state": {name: _read_array(f["model"][name]) for name in f["model"]},
        "lr_scheduler_state": json.loads(f["lr_scheduler"].attrs["state"]),
        "rng_states": {k: json.loads(v) for k, v in f["rng"].attrs.items()},
        "trainer_state": _read_state(f["trainer"]),
        "format1_arrays": {k: v[...] for k, v in f["trainer"]["arrays"].items()}
        if int(f.attrs["format_version"]) == 1 else {},
        "manifests": {k: json.loads(g.attrs["manifest"]) for k, g in f["data"].items()},
        "optimizer_state": _read_optimizer(f["optimizer"]) if "optimizer" in f else None,
        "plugin_states": {name.replace("%2F", "/").replace("%25", "%"): _read_state(group)
                          for name, group in f["plugins"].items()} if "plugins" in f else {},
    })
    arrays = loaded.pop("format1_arrays")
    if not isinstance(loaded["config"], dict):
        raise CheckpointError(f"{path}: /config: not a mapping; expected the run's config")
    config = _check_config(loaded)
    if loaded["format_version"] == 1:
        _upgrade_format1(loaded, arrays)  # (reads the config as it was written)
    loaded["config"] = config  # as validated: every default filled in
    return loaded


def restore_model(model, state):
    """``model.load_state_dict(state)``, for weights read from a checkpoint: each must have the
    model's dtype too (a float64 or int8 array where float32 was saved means the file is not
    what it claims, so it is refused, never cast)."""
    own = dict(model.state_dict())
    for name, value in state.items():
        if name in own and value.dtype != own[name].dtype:
            raise ValueError(f"load_state_dict: {name} has dtype {value.dtype}, the model "
                             f"expects {own[name].dtype}")
    model.load_state_dict(state)


def _upgrade_format1(loaded, arrays):
    """Read a format-1 checkpoint as today's: its sampler orders into the trainer's state, and
    its method states into ``plugin_states`` under today's names: /trainer's 'weighting' and
    'surgery', and a continual sequence's 'strategy' with its 'continual.*' arrays
    (``mtl.continual.upgrade_format1``)."""
    from tinymtl.mtl.continual import upgrade_format1

    state, config = loaded["trainer_state"], loaded["config"]
    for task, sampler in state.get("samplers", {}).items():
        sampler["order"] = arrays.pop(f"sampler_order.{task}")
    training = config.get("training", {})
    plugins = loaded["plugin_states"]
    if state.get("weighting") is not None:
        plugins[training.get("weighting", "static")] = state.pop("weighting")
    if state.get("surgery") is not None:
        plugins[training["gradients"]] = state.pop("surgery")
    state.pop("surgery", None)
    sequence = state.get("continual")
    if sequence is not None and "strategy" in sequence:
        method = config["continual"]["method"]
        prefix = "continual."
        strategy_arrays = {k[len(prefix):]: arrays.pop(k) for k in list(arrays)
                           if k.startswith(prefix)}
        strategy = sequence.pop("strategy")
        if method != "offline":  # offline's stages had no strategy in their trainers
            plugins[method] = upgrade_format1(method, strategy, strategy_arrays)
        else:
            plugins[method] = {"learned": list(strategy["learned"])}


def _read_optimizer(group):
    scalars = json.loads(group.attrs["scalars"])
    state = {}
    for index, entry_group in group["state"].items():
        entry = {key: _read_array(value) for key, value in entry_group.items()}
        entry.update(scalars.get(index, {}))
        state[int(index)] = entry
    for index, values in scalars.items():
        state.setdefault(int(index), {}).update(values)
    param_groups = json.loads(group.attrs["param_groups"])
    for g in param_groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": param_groups}


def save_private(path, private_state, tasks, model_config, source=None):
    """Write task-private weights (``MultiTaskModel.private_state_dict``) atomically; returns
    the file's size in bytes."""
    path = pathlib.Path(path)
    with atomic_write(path) as temporary:
        with h5py.File(temporary, "w", userblock_size=USERBLOCK) as f:
            f.attrs["format"] = PRIVATE_FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["tinymtl_version"] = __version__
            f.attrs["tasks"] = json.dumps(sorted(tasks))
            f.attrs["model_config"] = json.dumps(model_config, sort_keys=True)
            f.attrs["source"] = str(source or "")
            group = f.create_group("model")
            for name, value in private_state.items():
                _write_array(group, name, value)
        seal(temporary)
    return path.stat().st_size


def load_private(path):
    """{'tasks', 'model_config', 'source', 'model_state'} from a ``save_private`` file."""
    return _read(path, PRIVATE_FORMAT, "task-private weights file", lambda f: {
        "path": str(path), "tasks": json.loads(f.attrs["tasks"]),
        "model_config": json.loads(f.attrs["model_config"]), "source": str(f.attrs["source"]),
        "model_state": {name: _read_array(f["model"][name]) for name in f["model"]}})
