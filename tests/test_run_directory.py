"""Run directories in daily use: a second run never replaces an earlier one silently (refused
unless --overwrite; --resume continues it), --resume of a finished run trains nothing, a
refused resume names the config keys that differ, and every run ends saying where it wrote and
how to look into it."""

import json

from click.testing import CliRunner
from mtl_helpers import tiny_config, write_config

from tinymtl.cli import main


def config_file(tmp_path, **training):
    config = tiny_config(training={"steps": 6, "eval_every": 3, "log_every": 3,
                                   "checkpoint_every": 3, **training})
    config["tasks"] = {t: dict(s, train_size=120, test_size=30)
                       for t, s in config["tasks"].items()}
    return write_config(tmp_path / "tiny.yaml", config)


def run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args), "--quiet"])


def test_a_second_run_is_refused_and_the_first_kept(tmp_path, data_dir):
    config, out = config_file(tmp_path), tmp_path / "run"
    first = run(config, "--out", out)
    assert first.exit_code == 0, first.output
    assert f"run directory: {out}" in first.output
    assert f"tinymtl eval {out / 'checkpoint.h5'}" in first.output
    assert "tinymtl predict" in first.output  # text tasks: predict can answer them
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run(config, "--out", out)
    assert again.exit_code == 2
    assert again.output.strip() == f"error: {out}: holds an earlier run (finished); continue " \
                                   f"it with --resume, replace it with --overwrite, or write " \
                                   f"elsewhere with --out DIR"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == kept
    replaced = run(config, "--out", out, "--overwrite")
    assert replaced.exit_code == 0 and "removing the earlier run" in replaced.output
    assert run(config, "--out", out, "--overwrite", "--resume").exit_code == 2


def test_resuming_a_finished_run_trains_nothing(tmp_path, data_dir):
    config, out = config_file(tmp_path), tmp_path / "run"
    assert run(config, "--out", out).exit_code == 0
    metrics = (out / "metrics.jsonl").stat().st_mtime_ns
    result = run(config, "--out", out, "--resume")
    assert result.exit_code == 0 and "this run is complete; nothing to train" in result.output
    assert (out / "metrics.jsonl").stat().st_mtime_ns == metrics


def test_a_refused_resume_names_the_keys_that_differ(tmp_path, data_dir):
    config, out = config_file(tmp_path, steps=12), tmp_path / "run"
    assert run(config, "--out", out, "--set", "training.max_time=0.001").exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False  # paused at once: resumable
    result = run(config, "--out", out, "--resume", "--set", "training.lr=0.5",
                 "--set", "tasks.math.train_size=100")
    assert result.exit_code != 0
    assert "(tasks.math.train_size, training.lr differ)" in result.output


def test_a_misspelt_key_gets_a_suggestion_and_steps_a_shortcut(tmp_path, data_dir):
    config, out = config_file(tmp_path), tmp_path / "run"
    result = run(config, "--out", out, "--set", "training.batchsize=8")
    assert result.exit_code == 2
    assert "unknown key 'training.batchsize'; did you mean 'batch_size'?" in result.output
    result = run(config, "--out", out, "--steps", "3")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["config"]["training"]["steps"] == 3


def test_the_datasets_cache_is_one_place_from_any_directory(tmp_path, monkeypatch):
    from tinymtl.datasets.cache import cache_dir, location

    monkeypatch.delenv("TINYMTL_DATA_DIR", raising=False)
    default = cache_dir()
    monkeypatch.chdir(tmp_path)  # (it used to follow the current directory)
    assert cache_dir() == default
    with location(tmp_path / "chosen"):  # a config's data.cache_dir
        assert cache_dir() == tmp_path / "chosen"
        monkeypatch.setenv("TINYMTL_DATA_DIR", str(tmp_path / "env"))
        assert cache_dir() == tmp_path / "env"  # the environment variable wins
    monkeypatch.delenv("TINYMTL_DATA_DIR")
    assert cache_dir() == default


def test_a_config_can_name_its_data_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYMTL_DATA_DIR", raising=False)
    config = config_file(tmp_path)
    result = run(config, "--out", tmp_path / "run", "--set", f"data.cache_dir={tmp_path / 'c'}")
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in (tmp_path / "c").iterdir()) == [".h5", ".h5", ".json",
                                                                    ".json"]


def test_predict_warns_when_an_input_is_unlike_anything_trained_on(tmp_path, data_dir):
    config, out = config_file(tmp_path), tmp_path / "run"
    assert run(config, "--out", out).exit_code == 0
    result = CliRunner().invoke(main, ["predict", str(out / "checkpoint.h5"), "--task", "math",
                                       "3+4", "50+50"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: '50+50': '50' never appears in math's training inputs: the "
                        "answer is a guess"]
    result = CliRunner().invoke(main, ["predict", str(out / "checkpoint.h5"), "--task", "math",
                                       "--json", "50+50"])
    assert json.loads(result.output.splitlines()[-1])["warning"].startswith("'50' never")



def test_a_resumed_run_says_how_much_of_its_wall_time_came_before(tmp_path, data_dir):
    config, out = config_file(tmp_path, steps=12), tmp_path / "run"
    assert run(config, "--out", out, "--set", "training.max_time=0.001").exit_code == 0
    result = run(config, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    timings = json.loads((out / "summary.json").read_text())["timings"]
    assert timings["resumed_from_step"] >= 1 and timings["seconds_before_resume"] > 0
    assert f"s before the resume at step {timings['resumed_from_step']})" in result.output


def test_a_single_task_run_is_labelled_single_task(tmp_path, data_dir):
    """Issue #21: a run of one task is not called "multitask" in its rows or checkpoints."""
    config = tiny_config(training={"steps": 6, "eval_every": 3, "log_every": 3,
                                   "checkpoint_every": 3, "keep_checkpoints": 2})
    config["tasks"] = {"math": dict(config["tasks"]["math"], train_size=120, test_size=30)}
    config["baselines"] = "none"
    path, out = write_config(tmp_path / "one.yaml", config), tmp_path / "run"
    assert run(path, "--out", out).exit_code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["run"] for r in rows} == {"single-task"}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "single-task_step_000000003.h5", "single-task_step_000000006.h5"]
    two = tiny_config(training={"steps": 6, "eval_every": 3, "log_every": 3})
    two["tasks"] = {t: dict(s, train_size=120, test_size=30) for t, s in two["tasks"].items()}
    assert run(write_config(tmp_path / "two.yaml", two), "--out", tmp_path / "two").exit_code == 0
    rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert {json.loads(line)["run"] for line in rows} >= {"multitask"}
