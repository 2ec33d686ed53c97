"""Checkpoint fuzzing: a real checkpoint truncated, with bytes flipped, with a dataset deleted,
replaced by a group, or given garbage attributes. Loading either succeeds with every array as
saved (each carries its CRC-32) or refuses with one CheckpointError line naming the file."""

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
    return path, checkpoint.load(path)


def damage(path, action, position, value):
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
            elif action == "garbage_attribute":
                for key in list(f[name].attrs) or ["state"]:
                    f[name].attrs[key] = "{not json" if value % 2 else np.int8(value % 128)


@settings(max_examples=int(os.environ.get("TINYMTL_FUZZ_EXAMPLES", 150)), deadline=None)
@given(st.sampled_from(["truncate", "flip", "flip", "delete", "regroup",
                        "garbage_attribute"]),
       st.integers(0, 2 ** 31), st.integers(0, 255))
def test_a_damaged_checkpoint_loads_whole_or_is_refused_in_one_line(saved, tmp_path_factory,
                                                                    action, position, value):
    original, loaded = saved
    path = tmp_path_factory.mktemp("damaged") / "checkpoint.h5"
    shutil.copy(original, path)
    damage(path, action, position, value)
    try:
        again = checkpoint.load(path)
    except checkpoint.CheckpointError as error:
        message = str(error)
        assert message.startswith(str(path)) and "\n" not in message, message
        return
    for name, array in again["model_state"].items():  # whatever loads is what was saved
        assert array.tobytes() == loaded["model_state"][name].tobytes(), name
