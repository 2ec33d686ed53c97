"""Kill a real run with SIGKILL mid-training, resume it, and get bitwise-identical weights."""

import os
import signal
import subprocess
import sys
import time

import h5py
import pytest

from mtl_helpers import tiny_config, write_config


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "tinymtl.cli", *args], env=env,
                          capture_output=True, text=True)


def final_state(path):
    with h5py.File(path, "r") as f:
        state = {f"model/{k}": v[...].tobytes() for k, v in f["model"].items()}
        for index, group in f["optimizer"]["state"].items():
            state.update({f"optimizer/{index}/{k}": v[...].tobytes() for k, v in group.items()})
        state["step"] = int(f.attrs["step"])
    return state


@pytest.mark.slow
@pytest.mark.parametrize("methods", [
    {},  # alternating batches, plain sum
    {"schedule": "mixed", "weighting": "uncertainty", "gradients": "pcgrad"},  # plugin states
], ids=["plain", "plugins"])
def test_killed_run_resumes_to_identical_weights(methods, tmp_path, data_dir):
    config = tiny_config(training={"steps": 1500, "checkpoint_every": 50, "eval_every": 250,
                                   **methods},
                         model={"dropout": 0.1, "head_hidden": 16})
    path = write_config(tmp_path / "tiny.yaml", config)
    env = dict(os.environ, TINYMTL_DATA_DIR=str(data_dir))
    assert run_cli("run", str(path), "--out", str(tmp_path / "straight"), "--quiet",
                   env=env).returncode == 0

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "tinymtl.cli", "run", str(path), "--out",
                                str(interrupted), "--quiet"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (interrupted / "checkpoint.h5").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let it train past the checkpoint, so the kill loses real work
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "summary.json").exists(), "the run ended before it was killed"
    killed_at = final_state(interrupted / "checkpoint.h5")["step"]
    assert 0 < killed_at < 1500

    resumed = run_cli("run", str(path), "--out", str(interrupted), "--resume", "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    straight = final_state(tmp_path / "straight" / "checkpoint.h5")
    again = final_state(interrupted / "checkpoint.h5")
    assert straight.keys() == again.keys()
    different = [k for k in straight if straight[k] != again[k]]
    assert not different, f"resumed from step {killed_at}, differs in {different[:5]}"
    from tinymtl.train import checkpoint

    plugins = [checkpoint.load(run / "checkpoint.h5")["plugin_states"]
               for run in (tmp_path / "straight", interrupted)]
    assert set(plugins[0]) == {methods.get("weighting", "static"), methods.get("gradients", "sum")}
    assert plugins[0] == plugins[1]  # learned log-variances, PCGrad's generator and statistics


def test_resume_without_a_checkpoint_starts_fresh_and_leftovers_are_removed(tmp_path, data_dir):
    """--resume before the first checkpoint: a fresh run and a one-line note; the temporary
    file of a save killed half-way is removed by the next run."""
    config = tiny_config(training={"steps": 4, "eval_every": 4, "log_every": 2})
    config["tasks"] = {t: dict(s, train_size=100, test_size=20)
                       for t, s in config["tasks"].items()}
    path = write_config(tmp_path / "tiny.yaml", config)
    out = tmp_path / "run"
    out.mkdir()
    leftover = out / ".checkpoint.h5.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    env = dict(os.environ, TINYMTL_DATA_DIR=str(data_dir))
    result = run_cli("run", str(path), "--out", str(out), "--resume", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"note: {out / 'checkpoint.h5'} does not exist yet; " \
                                    f"starting a fresh run"
    assert (out / "summary.json").exists() and not leftover.exists()
