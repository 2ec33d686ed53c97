"""Sweeps (issue #22): a grid of arms × seeds, each an ordinary run directory, on Dask or
serially. Distributed arms end on bitwise the weights of serial ones; a worker killed mid-arm
(a real SIGKILL of its process) is replaced and the arm resumes from its checkpoint, ending as
an uninterrupted arm; a paused one is waited for, not replaced; a sweep started again reuses
its finished arms and resumes the others; the choice is made on validation; a failed arm is
named in one line, the others kept."""

import json
import os
import pathlib
import shutil
import signal
import threading
import time

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from mtl_helpers import tiny_config, write_config

from tinymtl.cli import main
from tinymtl.errors import ArmsFailed, ConfigError
from tinymtl.runs import arms as arm_runner
from tinymtl.runs import sweep as sweeps

pytest.importorskip("distributed")


def weights(run_dir):
    from tinymtl.train import checkpoint

    return checkpoint.load(pathlib.Path(run_dir) / "checkpoint.h5")["model_state"]


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert np.array_equal(wa[name], wb[name]), name


def base_file(tmp_path, steps=12, **training):
    config = tiny_config(training={"steps": steps, "eval_every": 6, "log_every": 3,
                                   "checkpoint_every": 4, "keep_checkpoints": 5, "batch_size": 16,
                                   **training})
    config["tasks"] = {t: dict(s, train_size=160, test_size=40)
                       for t, s in config["tasks"].items()}
    config["model"].update(channels=[8], features=16, embedding_dim=8)
    return write_config(tmp_path / "base.yaml", config)


def sweep_file(tmp_path, seeds=2, **base_training):
    base_file(tmp_path, **base_training)
    spec = {"name": "grid", "sweep": {
        "base": "base.yaml", "seeds": seeds,
        "arms": {"equal": {"training": {"weighting": "equal"}},
                 "uncertainty": {"training": {"weighting": "uncertainty"},
                                 "grid": {"training.lr": [0.01, 0.003]}}}}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def load(path):
    from tinymtl.train.config import read_yaml

    return sweeps.load(path, read_yaml(path))


def test_a_sweep_file_expands_to_arms_by_seeds(tmp_path):
    sweep = load(sweep_file(tmp_path))
    assert list(sweep["variants"]) == ["equal", "uncertainty/lr=0.01", "uncertainty/lr=0.003"]
    assert sweep["seeds"] == [3, 4]  # the base's seed, +1
    assert sweep["variants"]["uncertainty/lr=0.003"]["config"]["training"]["lr"] == 0.003
    assert sweep["variants"]["equal"]["config"]["training"]["lr"] == 0.01
    arms = sweeps.arms_of(sweep, tmp_path / "out")
    assert [a.name for a in arms][:3] == ["equal/seed_3", "equal/seed_4",
                                          "uncertainty/lr=0.01/seed_3"]
    assert arms[2].out == str(tmp_path / "out" / "uncertainty" / "lr=0.01" / "seed_3")
    assert arms[2].config["seed"] == 3


@pytest.mark.parametrize("spec, message", [
    ({"base": "base.yaml", "seed": 3}, "unknown key 'seed'"),
    ({"base": "base.yaml", "grid": {"training.lr": 0.1}}, "sweep.grid.training.lr = 0.1: "
                                                         "expected a list"),
    ({"base": "missing.yaml"}, "no such file"),
    ({"base": "base.yaml", "seeds": 0}, "sweep.seeds = 0: expected a count >= 1"),
    ({"base": "base.yaml", "select": "reading"}, "sweep.select = 'reading': expected one of"),
    ({"base": "base.yaml", "grid": {"training.lr": ["fast"]}}, "training.lr"),
])
def test_a_bad_sweep_file_is_refused_in_one_line(tmp_path, spec, message):
    base_file(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sweep": spec}))
    with pytest.raises(ConfigError) as error:
        load(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_grid_flags_on_a_run_config(tmp_path, data_dir):
    path = base_file(tmp_path)
    result = CliRunner().invoke(main, ["sweep", str(path), "--grid", "training.lr=0.01,0.003",
                                       "--seeds", "1", "--workers", "0", "--out",
                                       str(tmp_path / "s"), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert list(saved["variants"]) == ["lr=0.01", "lr=0.003"]
    assert (tmp_path / "s" / "lr=0.003" / "seed_3" / "summary.json").exists()
    assert "| lr=0.01" in result.output and (tmp_path / "s" / "sweep.png").exists()
    refused = CliRunner().invoke(main, ["sweep", str(path), "--grid", "training.lr"])
    assert refused.exit_code == 2 and "expected KEY=V1,V2" in refused.output
    unknown = CliRunner().invoke(main, ["sweep", str(path), "--grid", "training.lr=0.1",
                                        "--select", "reading"])
    assert unknown.exit_code == 2 and "select = 'reading': expected one of" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1


def test_distributed_arms_end_bitwise_equal_to_serial_arms(tmp_path, data_dir):
    """The same 6 arms serially in this process and on a 2-worker LocalCluster; the cluster
    leaves this process's environment as it was (Dask writes its workers' one-thread BLAS
    settings into it)."""
    sweep = load(sweep_file(tmp_path))
    serial = sweeps.run_sweep(sweep, tmp_path / "serial", workers=0, progress=False)
    environment = dict(os.environ)
    spread = sweeps.run_sweep(sweep, tmp_path / "dask", workers=2, progress=False)
    assert dict(os.environ) == environment
    for variant in sweep["variants"]:
        for seed in sweep["seeds"]:
            assert_same_weights(tmp_path / "serial" / variant / f"seed_{seed}",
                                tmp_path / "dask" / variant / f"seed_{seed}")
    assert serial["chosen_on_valid"] == spread["chosen_on_valid"]
    for variant, row in serial["variants"].items():
        assert row["valid"] == spread["variants"][variant]["valid"]
        assert row["test"] == spread["variants"][variant]["test"]


def _worker_pids():
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline()) or "forkserver" in " ".join(p.cmdline())]


def _start_arm_on_one_worker(arm):
    """Run ``arm`` on a one-worker LocalCluster in a thread; once its first periodic checkpoint
    is written, return (the thread, {"result": (done, failed)} once it ends, the worker pids)."""
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(
        result=arm_runner.execute([arm], workers=1, progress=False)))
    runner.start()
    checkpoint, deadline = pathlib.Path(arm.out) / "checkpoint.h5", time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and runner.is_alive():
        time.sleep(0.02)
    pids = _worker_pids()
    assert checkpoint.exists() and pids, "the arm wrote no checkpoint in 120 s"
    return runner, outcome, pids


def test_a_killed_worker_is_replaced_and_its_arm_resumes(tmp_path, data_dir):
    """SIGKILL the worker process running an arm once its first periodic checkpoint is
    written: Dask reschedules the arm, which resumes from that checkpoint (its summary says
    so) and ends on the weights of the arm run without interruption."""
    path = base_file(tmp_path, steps=400, checkpoint_every=20, eval_every=100)
    from tinymtl.train.config import load as load_config

    config = load_config(path)
    killed_arm = arm_runner.Arm("killed", config, str(tmp_path / "killed"))
    straight_arm = arm_runner.Arm("straight", config, str(tmp_path / "straight"))
    runner, outcome, pids = _start_arm_on_one_worker(killed_arm)
    summary_before = (tmp_path / "killed" / "summary.json").exists()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    runner.join(timeout=300)
    done, failed = outcome["result"]
    assert not failed and not summary_before
    resumed = done["killed"]["timings"].get("resumed_from_step")
    assert resumed is not None and 0 < resumed < 400  # it resumed, it did not start again
    arm_runner.execute([straight_arm], workers=0, progress=False)
    assert_same_weights(tmp_path / "killed", tmp_path / "straight")


def test_a_sweep_started_again_reuses_finished_arms_and_resumes_the_rest(tmp_path, data_dir):
    sweep = load(sweep_file(tmp_path, seeds=1))
    out = tmp_path / "out"
    first = sweeps.run_sweep(sweep, out, workers=0, progress=False)
    finished, cut = out / "equal" / "seed_3", out / "uncertainty" / "lr=0.003" / "seed_3"
    # a finished arm whose weights were deleted to save space is still finished: its result
    # is its summary
    (finished / "checkpoint.h5").unlink()
    shutil.rmtree(finished / "checkpoints")
    times = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}
    reference = tmp_path / "reference"
    shutil.copytree(cut, reference)
    # the arm as an interrupted sweep leaves it: its checkpoint from step 8, no summary
    shutil.copy(cut / "checkpoints" / "multitask_step_000000008.h5", cut / "checkpoint.h5")
    (cut / "summary.json").unlink()
    again = sweeps.run_sweep(sweep, out, workers=0, progress=False)
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()} == times
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["timings"]["resumed_from_step"] == 8
    assert_same_weights(cut, reference)
    for variant, row in first["variants"].items():
        assert (again["variants"][variant]["valid"], again["variants"][variant]["test"]) == \
            (row["valid"], row["test"])


def test_a_changed_sweep_into_the_same_folder_is_refused(tmp_path, data_dir):
    sweep = load(sweep_file(tmp_path, seeds=1))
    sweeps.run_sweep(sweep, tmp_path / "out", workers=0, progress=False)
    for entry in sweep["variants"].values():
        entry["config"]["training"]["steps"] = 8
    with pytest.raises(ConfigError, match=r"holds a run of another config \(training.steps "
                                          r"differs\)"):
        sweeps.run_sweep(sweep, tmp_path / "out", workers=0, progress=False)


def test_a_failed_arm_is_named_and_the_others_are_kept(tmp_path, data_dir):
    """An arm that diverges (lr 1e30) fails alone: its one-line error is listed, the other
    arms finish and the table is written."""
    base_file(tmp_path)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "sweep": {
        "base": "base.yaml", "grid": {"training.lr": [0.01, 1.0e30]}}}))
    with pytest.raises(ArmsFailed) as error:
        sweeps.run_sweep(load(path), tmp_path / "out", workers=0, progress=False)
    assert list(error.value.failed) == ["lr=1e+30/seed_3"]
    assert "lr=1e+30/seed_3: DivergedError" in str(error.value)
    table = (tmp_path / "out" / "sweep.md").read_text()
    assert "| lr=0.01** |" in table and "failed: lr=1e+30/seed_3" in table


def test_the_choice_is_made_on_validation_not_test(tmp_path):
    """Two variants whose validation and test rankings disagree: the sweep chooses the one
    better on validation and reports its (worse) test score."""
    sweep = load(sweep_file(tmp_path, seeds=1))
    kinds = {"kindergarten": "classification", "math": "classification"}

    def summary(valid, test):
        return {"wall_seconds": 1.0, "tasks": {t: {"valid_accuracy": valid, "test_accuracy": test}
                                               for t in kinds}}
    summaries = {"equal/seed_3": summary(0.9, 0.5), "uncertainty/lr=0.01/seed_3": summary(0.5, 0.9),
                 "uncertainty/lr=0.003/seed_3": summary(0.6, 0.8)}
    result = sweeps.summarise(sweep, kinds, summaries, {}, tmp_path)
    assert result["chosen_on_valid"] == "equal"
    assert result["chosen_per_arm"] == {"equal": "equal", "uncertainty": "uncertainty/lr=0.003"}
    assert result["variants"]["equal"]["test"] == (0.5, 0.0)


def test_a_plugin_workers_cannot_import_is_refused_before_any_worker_starts(tmp_path):
    """A plugin defined inside a function (or a script) exists only in this process: an arm
    naming it on Dask is refused in one line that says what to do."""
    from tinymtl.mtl import plugin as P
    from tinymtl.train.config import load as load_config

    @P.register
    class Local(P.Plugin):
        name = "local_for_sweep_test"

    try:
        config = load_config(base_file(tmp_path))
        config["callbacks"] = [{"method": "local_for_sweep_test"}]
        with pytest.raises(ConfigError, match="which Dask workers cannot import; expected it in "
                                              "an importable module, or --workers 0"):
            arm_runner.execute([arm_runner.Arm("a", config, str(tmp_path / "a"))], workers=2)
        assert not (tmp_path / "a").exists()
    finally:
        del P.REGISTRY["callback"][Local.name]


def test_ctrl_c_stops_a_distributed_sweep_and_the_same_command_continues_it(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends: the sweep and its
    workers): exit 130 with how to continue; running the command again finishes every arm,
    on the weights of an uninterrupted serial sweep."""
    import subprocess
    import sys

    path = sweep_file(tmp_path, seeds=1, steps=300, checkpoint_every=20, eval_every=100)
    env = dict(os.environ, TINYMTL_DATA_DIR=str(tmp_path / "data"))
    command = [sys.executable, "-m", "tinymtl.cli", "sweep", str(path), "--out",
               str(tmp_path / "dask"), "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list((tmp_path / "dask").glob("*/**/checkpoint.h5")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "run the same command again to continue" in output
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    serial = subprocess.run(command[:6] + [str(tmp_path / "serial"), "--workers", "0",
                                           "--quiet"], env=env, capture_output=True, text=True,
                            timeout=600)
    assert serial.returncode == 0, serial.stderr
    for arm in sweeps.arms_of(load(path), tmp_path / "dask"):
        assert_same_weights(arm.out, arm.out.replace(str(tmp_path / "dask"),
                                                     str(tmp_path / "serial")))


def test_check_validates_every_variant_of_a_sweep_file(tmp_path):
    path = sweep_file(tmp_path)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0
    assert result.output.strip() == f"{path}: a valid sweep file: 3 variants × 2 seeds = 6 runs"
    raw = yaml.safe_load(path.read_text())
    raw["sweep"]["arms"]["uncertainty"]["grid"] = {"training.lr": [0.01, -1]}
    path.write_text(yaml.safe_dump(raw))
    refused = CliRunner().invoke(main, ["check", str(path)])
    assert refused.exit_code == 2 and "uncertainty/lr=-1" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_a_paused_worker_is_waited_for_not_replaced(tmp_path, data_dir):
    """SIGSTOP the worker running an arm for longer than the scheduler's heartbeat timeout
    (shortened here to 1 s from Dask's 5 minutes: a laptop put to sleep mid-sweep is the same
    thing), then SIGCONT: the arm carries on where it was, on the same worker, and is not
    restarted from its checkpoint elsewhere."""
    import dask

    path = base_file(tmp_path, steps=400, checkpoint_every=20, eval_every=100)
    from tinymtl.train.config import load as load_config

    arm = arm_runner.Arm("paused", load_config(path), str(tmp_path / "paused"))
    with dask.config.set({"distributed.scheduler.worker-ttl": "1s"}):
        runner, outcome, pids = _start_arm_on_one_worker(arm)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(15)  # (Dask waits at least 10 heartbeat intervals, 5 s for one worker)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        runner.join(timeout=300)
    done, failed = outcome["result"]
    assert not failed
    assert done["paused"]["timings"].get("resumed_from_step") is None  # one uninterrupted run
