"""The TensorBoard callback: the event files hold every number of ``metrics.jsonl``, read back
here with the TFRecord framing and tensorboardX's own Event protobuf."""

import json
import struct

import pytest
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.train.tensorboard import scalars

from mtl_helpers import tiny_config, write_config

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2",
                                reason="tensorboardX (the tensorboard extra) is not installed")


def read_events(directory):
    """[(tag, step, value)] of every scalar in the event files under ``directory``, in the
    order written (files in name order, as TensorBoard reads them: the order they were
    opened), with the purge markers as ('<purge>', step, None)."""
    found = []
    for path in sorted(directory.rglob("events.out.tfevents.*"), key=lambda p: p.name):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4  # length, its crc, the record, its crc
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                found.append(("<purge>", event.step, None))
            for value in event.summary.value:
                found.append((value.tag, event.step, value.simple_value))
    return found


def test_rows_become_scalars_named_by_their_path():
    row = {"run": "multitask", "type": "train", "step": 20, "lr": 0.001, "done": True,
           "tasks": {"kg": {"loss": 0.5, "weight": 2, "note": "x", "bad": float("nan")}},
           "gradients": {"cosine": {"kg|math": -0.25}}}
    assert scalars(row) == [("train/lr", 0.001), ("train/tasks/kg/loss", 0.5),
                            ("train/tasks/kg/weight", 2),
                            ("train/gradients/cosine/kg_math", -0.25)]


def run(tmp_path, name, resume=False, **training):
    config = tiny_config(training=dict({"steps": 40, "eval_every": 20, "log_every": 10,
                                        "weighting": "uncertainty", "gradients": "pcgrad",
                                        "schedule": "mixed"}, **training),
                         callbacks=["tensorboard", {"method": "memory_monitor", "every": 10}])
    path = write_config(tmp_path / f"{name}.yaml", config)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / name),
                                       "--quiet"] + (["--resume"] if resume else []))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").open()]


def test_every_number_of_metrics_jsonl_is_in_the_event_files(tmp_path, data_dir):
    rows = run(tmp_path, "tb")
    events = read_events(tmp_path / "tb" / "tensorboard" / "multitask")
    written = {(tag, step): value for tag, step, value in events if tag != "<purge>"}
    expected = {(tag, row["step"]): value for row in rows if row["run"] == "multitask"
                for tag, value in scalars(row)}
    assert set(written) == set(expected)
    assert all(written[key] == pytest.approx(value, rel=1e-6) for key, value in expected.items())
    tags = {tag for tag, _ in written}
    # what the issue names: losses and metrics, learning rate, task weights, gradient
    # statistics, memory, validation during training and test at the end
    for tag in ["train/tasks/math/loss", "train/lr", "train/tasks/math/weight",
                "eval/tasks/math/valid_accuracy", "test/tasks/math/test_accuracy",
                "memory/rss_mib"]:
        assert tag in tags, tag
    assert any(tag.startswith("train/gradients/") for tag in tags)


def test_a_resumed_run_purges_what_the_interrupted_one_wrote_beyond_its_step(tmp_path,
                                                                           data_dir):
    import shutil

    from tinymtl.train import checkpoint

    keep = {"checkpoint_every": 20, "keep_checkpoints": 2}
    run(tmp_path, "tb", **keep)
    # the same directory, resumed from step 20: as if the process had died after it
    kept = tmp_path / "tb" / "checkpoints" / "multitask_step_000000020.h5"
    (tmp_path / "tb" / "checkpoint.h5").unlink()
    shutil.copy(kept, tmp_path / "tb" / "checkpoint.h5")
    assert checkpoint.load(tmp_path / "tb" / "checkpoint.h5")["step"] == 20
    run(tmp_path, "tb", resume=True, **keep)
    events = read_events(tmp_path / "tb" / "tensorboard" / "multitask")
    assert ("<purge>", 20, None) in events
    # after the purge marker, the resumed run wrote steps 30 and 40 again
    after = events[events.index(("<purge>", 20, None)):]
    assert {step for tag, step, _ in after if tag == "train/tasks/math/loss"} == {30, 40}


def test_without_tensorboardx_the_config_is_refused_in_one_line(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboardX"
                        else real_find_spec(name, *a))
    path = write_config(tmp_path / "c.yaml", tiny_config(callbacks=["tensorboard"]))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert "callbacks[0] = 'tensorboard': it needs the tensorboardX package" in result.output
    assert len(result.output.strip().splitlines()) == 1
