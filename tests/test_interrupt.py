"""Ctrl-C and SIGTERM during training (``train.interrupt``): the first signal finishes the
step, writes a checkpoint and says how to resume (exit 130); resuming ends on the weights of an
uninterrupted run; a second signal aborts at once and leaves the last checkpoint intact. The
signals are real (``os.kill`` of this process), sent from inside a step by a test callback."""

import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from mtl_helpers import tiny_config, write_config

from tinymtl.cli import main
from tinymtl.mtl import plugin as P


@pytest.fixture
def signalling():
    """A callback that, when TINYMTL_TEST_SIGNAL = 'NAME@STEP[xCOUNT]', sends itself the signal
    NAME (COUNT times) during the step after STEP (in its optimizer step, before the counter
    moves on) — and otherwise does nothing, so that the same config runs uninterrupted and
    resumes."""

    @P.register
    class Signaller(P.Plugin):
        name = "signaller_for_test"

        def on_after_optimizer_step(self, trainer, losses):
            wanted = os.environ.get("TINYMTL_TEST_SIGNAL")
            if not wanted:
                return
            name, when = wanted.split("@")
            step, _, count = when.partition("x")
            if trainer.step == int(step):
                for _ in range(int(count or 1)):
                    os.kill(os.getpid(), getattr(signal, name))

    yield Signaller
    del P.REGISTRY["callback"][Signaller.name]


def config_file(tmp_path, **training):
    config = tiny_config(training={"steps": 12, "eval_every": 6, "log_every": 3,
                                   "checkpoint_every": 4, **training},
                         callbacks=["signaller_for_test"])
    config["tasks"] = {t: dict(s, train_size=200, test_size=40)
                       for t, s in config["tasks"].items()}
    return write_config(tmp_path / "tiny.yaml", config)


def run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args), "--quiet"])


def weights(path):
    from tinymtl.train import checkpoint

    return checkpoint.load(path)["model_state"]


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_saves_the_step_and_resuming_ends_as_if_uninterrupted(
        signalling, tmp_path, data_dir, monkeypatch, name):
    config = config_file(tmp_path)
    # what the handlers were before (a shell's background job starts with SIGINT ignored)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert run(config, "--out", tmp_path / "whole").exit_code == 0
    monkeypatch.setenv("TINYMTL_TEST_SIGNAL", f"{name}@5")
    result = run(config, "--out", tmp_path / "cut")
    assert result.exit_code == 130, result.output
    assert f"paused at step 6 (interrupted ({name}))" in result.output  # that step finished
    command = f"tinymtl run {tmp_path / 'cut' / 'config.yaml'} --out {tmp_path / 'cut'} --resume"
    assert command in result.output
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["complete"] is False and summary["step"] == 6
    monkeypatch.delenv("TINYMTL_TEST_SIGNAL")
    assert run(tmp_path / "cut" / "config.yaml", "--out", tmp_path / "cut",
               "--resume").exit_code == 0
    whole, resumed = weights(tmp_path / "whole" / "checkpoint.h5"), \
        weights(tmp_path / "cut" / "checkpoint.h5")
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # handlers restored


def test_a_second_signal_aborts_at_once_and_the_last_checkpoint_stays(
        signalling, tmp_path, data_dir, monkeypatch):
    from tinymtl.train import checkpoint

    config = config_file(tmp_path)
    monkeypatch.setenv("TINYMTL_TEST_SIGNAL", "SIGINT@6x2")
    result = run(config, "--out", tmp_path / "cut")
    assert result.exit_code == 130 and "aborted" in result.output
    assert len(result.output.strip().splitlines()) <= 2  # the notice, then one line
    assert checkpoint.load(tmp_path / "cut" / "checkpoint.h5")["step"] == 4  # the last one
    assert not list((tmp_path / "cut").glob(".*.tmp"))


def test_an_interrupted_seed_names_its_folder_and_stops_the_others(
        signalling, tmp_path, data_dir, monkeypatch):
    config = config_file(tmp_path)
    monkeypatch.setenv("TINYMTL_TEST_SIGNAL", "SIGINT@5")
    result = run(config, "--out", tmp_path / "seeds", "--seeds", "2", "--workers", "0")
    assert result.exit_code == 130, result.output
    assert "seed_3: paused at step 6" in result.output and "--resume" in result.output
    assert not (tmp_path / "seeds" / "seed_4").exists()


def test_an_interrupt_in_the_baselines_resumes_them_from_their_checkpoint(tmp_path, data_dir,
                                                                        monkeypatch):
    """Ctrl-C while a baseline trains: the run stops after that step with the baseline
    checkpointed (no summary, no half-trained reference), and --resume goes on from it to the
    very results of an uninterrupted run."""
    from tinymtl.errors import Interrupted
    from tinymtl.runs import baselines
    from tinymtl.runs import run as run_config
    from tinymtl.train import checkpoint, interrupt
    from tinymtl.train.config import validate

    config = validate(dict(tiny_config(training={"steps": 6, "eval_every": 3}),
                           baselines="single_task"))
    config["tasks"] = {t: dict(s, train_size=120, test_size=30)
                       for t, s in config["tasks"].items()}
    whole = run_config(config, tmp_path / "whole", progress=False)
    real_fit = baselines.Trainer.fit

    def fit_then_signal(self, *args, **kwargs):
        if self.label == "baseline:math":  # as if Ctrl-C came during its first step
            interrupt._received["name"] = "SIGINT"
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(baselines.Trainer, "fit", fit_then_signal)
    with interrupt.handled(), pytest.raises(Interrupted, match="during the baseline of math"):
        run_config(config, tmp_path / "run", progress=False)
    out = tmp_path / "run"
    assert not (out / "summary.json").exists()
    assert checkpoint.load(out / "baselines" / "math.h5")["step"] == 1
    monkeypatch.setattr(baselines.Trainer, "fit", real_fit)
    resumed = run_config(config, out, resume=True, progress=False)
    for task, result in whole["tasks"].items():
        assert resumed["tasks"][task]["baseline_accuracy"] == result["baseline_accuracy"]
    ours = checkpoint.load(out / "baselines" / "math.h5")["model_state"]
    theirs = checkpoint.load(tmp_path / "whole" / "baselines" / "math.h5")["model_state"]
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in
                (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["run"], r["type"], r["step"]) for r in rows] == \
        [(r["run"], r["type"], r["step"]) for r in expected]
