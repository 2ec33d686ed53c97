"""Checkpoint fuzzing: a real checkpoint truncated, with bytes flipped, with a dataset deleted,
replaced by a group, retyped or reshaped (a well-formed file with its checksum rewritten), its
config edited, or given garbage attributes. Loading and restoring it into a trainer either
succeed with every array as saved (each carries its CRC-32) or refuse with one CheckpointError
line naming the file."""

import os
import shutil

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymtl.train import checkpoint

from mtl_helpers import small_config


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint of a short uncertainty + PCGrad run (model, optimizer, trainer and plugin
    states), and its arrays as loaded."""
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build, load_tasks, save_checkpoint

    directory = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYMTL_DATA_DIR", str(directory / "data"))
        config = small_config(training={"steps": 3, "schedule": "mixed",
                                        "weighting": "uncertainty", "gradients": "pcgrad"})
        tasks = load_tasks(config)
        trainer = make_trainer(config, tasks, build(config, tasks), progress=False)
        trainer.train_step()
        path = directory / "checkpoint.h5"
        save_checkpoint(path, trainer, config, tasks, 0.0)
    return path, checkpoint.load(path), (config, tasks)


def restore(loaded, config, tasks):
    """The loaded checkpoint put into a fresh trainer of its config, as --resume does."""
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build

    make_trainer(config, tasks, build(config, tasks), progress=False).load_state(loaded)


def rewrite(dataset, array):
    """Replace ``dataset`` by ``array``, with a matching checksum: a well-formed file whose
    content does not fit (only the structural checks can tell)."""
    import zlib

    group, name = dataset.parent, dataset.name.rsplit("/", 1)[1]
    del group[name]
    group.create_dataset(name, data=array).attrs["crc32"] = zlib.crc32(
        np.ascontiguousarray(array).tobytes())


def damage(path, action, position, value, unsealed=False):
    """Damage the file's bytes (``truncate``, ``flip``: the seal refuses them), or edit it
    through HDF5 and seal it again (a well-formed file whose content is wrong: what the
    structural checks must refuse). ``unsealed``: a file without a seal, as before format 3,
    where each array's CRC-32 and the HDF5 library itself are the only guards."""
    if unsealed:
        unseal(path)
    data = bytearray(path.read_bytes())
    if action == "truncate":
        path.write_bytes(bytes(data[:position % len(data)]))
    elif action == "flip":
        data[position % len(data)] ^= 1 << (value % 8)
        path.write_bytes(bytes(data))
    else:
        with h5py.File(path, "r+") as f:
            names = []
            f.visit(names.append)
            name = names[position % len(names)]
            if action == "delete":
                del f[name]
            elif action == "regroup" and isinstance(f[name], h5py.Dataset):
                del f[name]
                f.create_group(name)
            elif action == "retype" and isinstance(f[name], h5py.Dataset):
                array = f[name][...]
                rewrite(f[name], array.astype(np.float64 if array.dtype != np.float64
                                              else np.int8))
            elif action == "reshape" and isinstance(f[name], h5py.Dataset):
                array = f[name][...]
                shape = (array.size, 1) if array.ndim != 2 or array.shape[1] != 1 else (-1,)
                rewrite(f[name], array.reshape(shape) if array.size else array[..., None])
            elif action == "config":
                import json

                config = json.loads(f.attrs["config"])
                section = sorted(config)[position % len(config)]
                config[section] = [None, -1, "x", {"bad": 1}, 1e400][value % 5]
                f.attrs["config"] = json.dumps(config)
            elif action == "garbage_attribute":
                for key in list(f[name].attrs) or ["state"]:
                    f[name].attrs[key] = "{not json" if value % 2 else np.int8(value % 128)
        if not unsealed:
            checkpoint.seal(path)


def unseal(path):
    """Blank the user block: the file reads as one written before the seal (format 3 files
    are then refused, as a damaged seal; the attribute is set back to 2 to test the rest)."""
    data = bytearray(path.read_bytes())
    data[:checkpoint.USERBLOCK] = bytes(checkpoint.USERBLOCK)
    path.write_bytes(bytes(data))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 2


@settings(max_examples=int(os.environ.get("TINYMTL_FUZZ_EXAMPLES", 150)), deadline=None)
@given(st.sampled_from(["truncate", "flip", "flip", "delete", "regroup", "retype", "reshape",
                        "config", "garbage_attribute"]),
       st.integers(0, 2 ** 31), st.integers(0, 255))
def test_a_damaged_checkpoint_loads_whole_or_is_refused_in_one_line(saved, tmp_path_factory,
                                                                    action, position, value):
    original, loaded, (config, tasks) = saved
    path = tmp_path_factory.mktemp("damaged") / "checkpoint.h5"
    shutil.copy(original, path)
    damage(path, action, position, value)
    try:
        again = checkpoint.load(path)
        restore(again, config, tasks)
    except checkpoint.CheckpointError as error:
        message = str(error)
        assert message.startswith(str(path)) and "\n" not in message, message
        return
    for name, array in again["model_state"].items():  # whatever loads is what was saved
        assert array.tobytes() == loaded["model_state"][name].tobytes(), name


def _retype_weight(f):
    rewrite(f["model"][sorted(f["model"])[0]], f["model"][sorted(f["model"])[0]][...]
            .astype(np.float64))


def _reshape_weight(f):
    name = next(n for n in sorted(f["model"]) if f["model"][n].ndim == 2)
    rewrite(f["model"][name], f["model"][name][...].T.copy())


def _edit_config(f):
    import json

    config = json.loads(f.attrs["config"])
    config["training"]["lr"] = -1
    f.attrs["config"] = json.dumps(config)


def _duplicate_sampler_order(f):
    order = f["trainer/samplers/math/order"][...]
    order[1] = order[0]
    rewrite(f["trainer/samplers/math/order"], order)


STRUCTURAL = {
    "a weight stored as float64": (_retype_weight, "has dtype float64, the model expects "
                                                   "float32"),
    "a weight transposed": (_reshape_weight, "has shape"),
    "the config edited to a bad value": (_edit_config, "/config: training.lr = -1"),
    "a method's state deleted": (lambda f: f["plugins"].__delitem__("pcgrad"),
                                 "/plugins/pcgrad: missing"),
    "an optimizer moment deleted": (lambda f: f["optimizer/state/0"].__delitem__("exp_avg"),
                                    "optimizer state of parameter 0 has ['exp_avg_sq', "
                                    "'step'], expected"),
    "a sampler order that is no permutation": (_duplicate_sampler_order,
                                               "not a permutation"),
    "a task's data manifest deleted": (lambda f: f["data"].__delitem__("math"),
                                       "/data: has ['kindergarten']"),
    "the trainer group deleted": (lambda f: f.__delitem__("trainer"),
                                  "/trainer: missing; expected a group"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_a_well_formed_checkpoint_that_does_not_fit_is_refused_naming_what(saved, tmp_path,
                                                                          case):
    """Checksums cannot tell these (each array's CRC was rewritten with it): the structural
    checks on load and restore do, before anything is used."""
    original, _, (config, tasks) = saved
    edit, expected = STRUCTURAL[case]
    path = tmp_path / "checkpoint.h5"
    shutil.copy(original, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    checkpoint.seal(path)  # well-formed, checksum and all: only the structure is wrong
    with pytest.raises(checkpoint.CheckpointError) as refused:
        restore(checkpoint.load(path), config, tasks)
    message = str(refused.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message, \
        message


@settings(max_examples=int(os.environ.get("TINYMTL_FUZZ_EXAMPLES", 150)) // 10,
          deadline=None)
@given(st.sampled_from(["truncate", "flip", "delete", "regroup", "retype", "reshape",
                        "config", "garbage_attribute"]),
       st.integers(0, 2 ** 31), st.integers(0, 255), st.sampled_from(["eval", "inspect"]))
def test_the_command_line_on_a_damaged_checkpoint_exits_1_in_one_line_and_writes_nothing(
        saved, tmp_path_factory, action, position, value, command):
    from click.testing import CliRunner

    from tinymtl.cli import main

    original, _, _ = saved
    directory = tmp_path_factory.mktemp("cli-damaged")
    path = directory / "checkpoint.h5"
    shutil.copy(original, path)
    damage(path, action, position, value)
    before = path.read_bytes()
    env = {"TINYMTL_DATA_DIR": str(original.parent / "data")}  # the run's data cache
    result = CliRunner().invoke(main, [command, str(path)], env=env)
    assert "Traceback" not in result.output and "internal error" not in result.output, \
        result.output
    if result.exit_code != 0:
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert lines[0].startswith(f"error: {path}"), lines[0]
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoint.h5"]
    assert path.read_bytes() == before


def test_any_changed_byte_is_refused_by_the_seal_before_hdf5_reads_it(saved, tmp_path):
    """The sha256 in the user block covers every byte after it; a change in the user block
    itself breaks the seal. (A flip the HDF5 library parses can crash the process: a soak
    found one, a segmentation fault inside h5py reading a damaged attribute.)"""
    original = saved[0]
    size = original.stat().st_size
    for position in (0, 30, checkpoint.USERBLOCK, checkpoint.USERBLOCK + 100, size // 2,
                     size - 1):
        path = tmp_path / f"flipped_{position}.h5"
        data = bytearray(original.read_bytes())
        data[position] ^= 0x10
        path.write_bytes(bytes(data))
        with pytest.raises(checkpoint.CheckpointError, match="sha256 does not match|seal"):
            checkpoint.load(path)


def test_files_written_before_the_seal_still_load(saved, tmp_path):
    path = tmp_path / "unsealed.h5"
    shutil.copy(saved[0], path)
    unseal(path)
    loaded = checkpoint.load(path)
    assert loaded["format_version"] == 2
    for name, array in loaded["model_state"].items():
        assert array.tobytes() == saved[1]["model_state"][name].tobytes()
