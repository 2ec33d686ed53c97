"""HDF5 checkpoints: plain-h5py readable, bitwise round trip, atomic writes, clear errors."""

import json

import h5py
import numpy as np
import pytest

from tinymtl.train import checkpoint
from tinymtl.train.config import validate
from tinymtl.runs import run

from mtl_helpers import tiny_config


@pytest.fixture
def finished_run(tmp_path, data_dir):
    config = validate(tiny_config(training={"steps": 60, "eval_every": 30}, baselines=True))
    config["name"] = "tiny"
    summary = run(config, tmp_path / "run", progress=False)
    return tmp_path / "run", summary


def test_run_ends_with_a_bitwise_round_trip(finished_run):
    out, summary = finished_run
    assert summary["roundtrip"] == {"weights_bitwise_equal": True, "outputs_bitwise_equal": True}
    assert summary["checkpoint"]["bytes"] == (out / "checkpoint.h5").stat().st_size < 100e6
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "kindergarten_curves.png",
                 "math_curves.png"):
        assert (out / name).exists(), name
    for task in ("kindergarten", "math"):
        result = summary["tasks"][task]
        for key in ("test_accuracy", "peak_accuracy", "forgetting", "baseline_accuracy"):
            assert result[key] is not None, (task, key)


def test_checkpoint_is_plain_hdf5_with_the_documented_layout(finished_run):
    out, _ = finished_run
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["format"] == "tinymtl.checkpoint"
        assert json.loads(f.attrs["config"])["name"] == "tiny"
        assert f["model"]["heads.math.weight"].dtype == np.float32
        assert set(f) == {"model", "optimizer", "lr_scheduler", "rng", "trainer", "plugins",
                          "data"}
        assert json.loads(f["plugins"]["static"].attrs["state"]) == {
            "w": {"kindergarten": 1.0, "math": 1.0}}
        trainer = json.loads(f["trainer"].attrs["state"])  # one state convention everywhere
        assert trainer["samplers"]["math"]["order"] == {"$array": "samplers/math/order"}
        assert f["trainer"]["samplers"]["math"]["order"].dtype == np.int64
        assert "sha256" in json.loads(f["data"]["math"].attrs["manifest"])
        assert "exp_avg" in f["optimizer"]["state"]["0"]


def test_a_crash_during_save_leaves_the_last_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.h5"
    checkpoint.save(path, model_state={"w": np.arange(4, dtype=np.float32)}, step=1)
    before = path.read_bytes()

    def explode(value):
        raise RuntimeError("disk full")
    monkeypatch.setattr(checkpoint, "to_numpy", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.save(path, model_state={"w": np.zeros(4, dtype=np.float32)}, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.h5"]  # no temporary left
    assert checkpoint.load(path)["step"] == 1


def test_missing_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="checkpoint not found"):
        checkpoint.load(tmp_path / "nope.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read checkpoint"):
        checkpoint.load(corrupt)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(checkpoint.CheckpointError, match="not a tinymtl checkpoint"):
        checkpoint.load(foreign)


def test_a_damaged_array_is_reported_with_its_path(tmp_path):
    """Every array carries its CRC-32; one changed value is found on load, by name."""
    path = tmp_path / "c.h5"
    checkpoint.save(path, model_state={"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
                    plugin_states={"p": {"anchor": np.ones(4, np.float32)}}, step=1)
    assert checkpoint.load(path)["step"] == 1
    with h5py.File(path, "r+") as f:
        assert "crc32" in f["model"]["w"].attrs and "crc32" in f["plugins"]["p"]["anchor"].attrs
        f["plugins"]["p"]["anchor"][2] = 1.0000001  # one value changed, its checksum not
    with pytest.raises(checkpoint.CheckpointError, match=r"c\.h5: its sha256 does not match"):
        checkpoint.load(path)  # the whole file's seal sees it first
    checkpoint.seal(path)  # sealed again over the change: the array's own CRC-32 still sees it
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"c\.h5: /plugins/p/anchor: its checksum does not match"):
        checkpoint.load(path)
