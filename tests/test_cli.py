"""The command line, through click's test runner, and one real subprocess run of the flagship."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from tinymtl.cli import main

from mtl_helpers import tiny_config, write_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests below: (runner, run directory, env)."""
    root = tmp_path_factory.mktemp("cli")
    env = {"TINYMTL_DATA_DIR": str(root / "data")}
    runner = CliRunner()
    config = write_config(root / "tiny.yaml", tiny_config(training={"steps": 200}))
    result = runner.invoke(main, ["run", str(config), "--out", str(root / "run"), "--quiet"],
                           env=env)
    assert result.exit_code == 0, result.output
    assert "round trip: weights bitwise equal True" in result.output
    return runner, root / "run", env


def one_line_error(result, code):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_eval_reports_held_out_accuracy(trained):
    runner, run, env = trained
    result = runner.invoke(main, ["eval", str(run / "checkpoint.h5"), "--json"], env=env)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    summary = json.loads((run / "summary.json").read_text())
    for task in ("kindergarten", "math"):  # the same numbers the run itself reported
        assert scores[task]["test_accuracy"] == summary["tasks"][task]["test_accuracy"]
    one = runner.invoke(main, ["eval", str(run / "checkpoint.h5"), "--task", "math"], env=env)
    assert "math" in one.output and "kindergarten" not in one.output


def test_predict_switches_tasks_in_one_process(trained):
    runner, run, env = trained
    result = runner.invoke(main, ["predict", str(run / "checkpoint.h5"), "--task", "math",
                                  "7+5", "9 minus 3", "--json"], env=env)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.output.splitlines()]
    assert [a["input"] for a in answers] == ["7+5", "9 minus 3"]
    assert all(a["answer"] in [str(k) for k in range(19)] for a in answers)
    mixed = runner.invoke(main, ["predict", str(run / "checkpoint.h5"), "--input", "-"],
                          input="math\t7+5\nkindergarten\tafter C\n", env=env)
    assert mixed.exit_code == 0, mixed.output
    tasks = [line.split("\t")[0] for line in mixed.output.splitlines()]
    assert tasks == ["math", "kindergarten"]
    assert mixed.output.splitlines()[1].split("\t")[2] in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_inspect_shows_layout_shapes_config_and_metrics(trained):
    runner, run, env = trained
    result = runner.invoke(main, ["inspect", str(run / "checkpoint.h5")], env=env)
    assert result.exit_code == 0, result.output
    for text in ("step 200", "heads.math.weight", "(19, 64)", "total values", "schedule "
                 "alternating", "sha256", "metrics      step 200"):
        assert text in result.output, text


def test_user_errors_are_one_line_with_a_nonzero_exit(trained, tmp_path):
    runner, run, env = trained
    checkpoint = str(run / "checkpoint.h5")
    line = one_line_error(runner.invoke(main, ["predict", checkpoint, "--task", "music", "x"],
                                        env=env), 2)
    assert "unknown task 'music'" in line
    line = one_line_error(runner.invoke(main, ["predict", checkpoint, "--task", "math", "7~5"],
                                        env=env), 1)
    assert "'~'" in line
    line = one_line_error(runner.invoke(main, ["eval", str(tmp_path / "none.h5")]), 1)
    assert "checkpoint not found" in line
    (tmp_path / "bad.h5").write_text("not hdf5")
    line = one_line_error(runner.invoke(main, ["inspect", str(tmp_path / "bad.h5")]), 1)
    assert "cannot read checkpoint" in line
    line = one_line_error(runner.invoke(main, ["run", str(tmp_path / "none.yaml")]), 2)
    assert "cannot read config" in line


BAD_CONFIGS = {
    "unknown key": ({"training": {"learning_rate": 0.1}}, "unknown key 'training.learning_rate'"),
    "wrong type": ({"training": {"steps": "many"}}, "training.steps = 'many': expected an integer"),
    "impossible value": ({"training": {"lr": -1}}, "training.lr = -1: expected a number > 0"),
    "unknown choice": ({"training": {"schedule": "random"}}, "expected one of alternating"),
    "unknown generator": ({"tasks": {"x": {"generator": "poetry"}}}, "tasks.x.generator"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_errors_name_the_key_the_value_and_what_is_allowed(case, tmp_path):
    change, message = BAD_CONFIGS[case]
    config = tiny_config()
    for section, values in change.items():
        config[section] = dict(config[section], **values) if section != "tasks" else values
    path = write_config(tmp_path / "bad.yaml", config)
    line = one_line_error(CliRunner().invoke(main, ["run", str(path)]), 2)
    assert message in line and "bad.yaml" in line
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("training:\n  steps: [1, 2\n")
    line = one_line_error(CliRunner().invoke(main, ["run", str(path)]), 2)
    assert "malformed YAML at line" in line


@pytest.mark.slow
def test_flagship_config_runs_for_real_at_a_tiny_size(tmp_path, data_dir):
    """The example config itself, shrunk, through the installed entry point in a subprocess."""
    root = os.path.join(os.path.dirname(__file__), "..")
    config = yaml.safe_load(open(os.path.join(root, "examples", "kindergarten_math.yaml")))
    for task in config["tasks"].values():
        task.update(train_size=600, test_size=100)
    config["training"].update(steps=120, eval_every=60, checkpoint_every=60, warmup_steps=10)
    path = write_config(tmp_path / "kindergarten_math.yaml", config)
    result = subprocess.run(
        [sys.executable, "-m", "tinymtl.cli", "run", str(path), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=dict(os.environ, TINYMTL_DATA_DIR=str(data_dir)))
    assert result.returncode == 0, result.stderr
    assert "step/s" in result.stderr and "eta" in result.stderr   # the progress bar
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("config", "seed", "wall_seconds", "tasks", "roundtrip", "checkpoint"):
        assert key in summary
    assert summary["roundtrip"] == {"weights_bitwise_equal": True, "outputs_bitwise_equal": True}
    assert set(summary["tasks"]) == {"kindergarten", "math"}
    assert summary["tasks"]["math"]["baseline_accuracy"] is not None
    assert summary["tasks"]["math"]["linear_accuracy"] is not None


@pytest.mark.parametrize("sequence", [False, True], ids=["multitask", "continual"])
def test_cuda_without_cupy_is_a_one_line_error(sequence, tmp_path, monkeypatch):
    """Every kind of run selects its device the same way (a continual sequence once trained
    on the CPU whatever ``device`` said)."""
    import tinymtl.backend.device as device

    def no_cupy():
        raise device.DeviceUnavailableError("device 'cuda' needs CuPy: install it with "
                                            "`pip install tinymtl[gpu]`")
    monkeypatch.setattr(device, "_import_cupy", no_cupy)
    config = tiny_config(device="cuda")
    if sequence:
        config["continual"] = {"stages": ["kindergarten", "math"], "method": "ewc"}
    path = write_config(tmp_path / "gpu.yaml", config)
    line = one_line_error(CliRunner().invoke(main, ["run", str(path), "--out",
                                                    str(tmp_path / "run")]), 1)
    assert "needs CuPy" in line
    device.set_device("cpu")


def test_an_internal_error_is_one_line_that_says_so_and_debug_shows_it(tmp_path, monkeypatch):
    """Anything that is not a user's error is a bug: one line saying so, exit 1, and the
    traceback with --debug."""
    import tinymtl.runs

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(tinymtl.runs, "run", broken)
    path = write_config(tmp_path / "ok.yaml", tiny_config())
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run")])
    line = one_line_error(result, 1)
    assert line == ("error: internal error (a bug in tinymtl): RuntimeError: boom second "
                    "line; run again with --debug for the traceback")
    result = CliRunner().invoke(main, ["--debug", "run", str(path)])
    assert isinstance(result.exception, RuntimeError)


def test_every_user_error_type_is_one_family():
    from tinymtl.backend.device import DeviceUnavailableError
    from tinymtl.datasets.mnist import DataError
    from tinymtl.errors import TinymtlError
    from tinymtl.train import CheckpointError, ConfigError

    for error in (ConfigError, CheckpointError, DataError, DeviceUnavailableError):
        assert issubclass(error, TinymtlError)
    assert ConfigError.exit_code == 2 and CheckpointError.exit_code == 1


def test_numbers_as_people_write_them_and_no_nan_or_inf(tmp_path):
    from tinymtl.train import config as config_module

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config()).replace("lr: 0.01", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert config_module.load(path)["training"]["lr"] == 0.001  # YAML 1.2: a float
    for key, text in (("training.lr", ".nan"), ("training.lr", ".inf"),
                      ("training.grad_clip", "-.inf"), ("tasks.math.loss_weight", ".nan")):
        with pytest.raises(config_module.ConfigError, match=f"{key} = .*expected a finite"):
            config_module.load(path, overrides=[f"{key}={text}"])


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\x00\xff\xfe", "not a text file (it is not UTF-8)"),
    (("a: " + "[" * 5000 + "]" * 5000).encode(), "nested too deeply to be a config"),
    (b"", "expected a YAML mapping of config sections"),
])
def test_odd_config_files_are_one_line_naming_the_file(content, message, tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_bytes(content)
    line = one_line_error(CliRunner().invoke(main, ["run", str(path)]), 2)
    assert str(path) in line and message in line


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    for args, message in ((["run", str(tmp_path / "dir.yaml")], "is a directory"),
                          (["run"], "Missing argument 'CONFIG'"),
                          (["bogus"], "No such command 'bogus'")):
        assert message in one_line_error(CliRunner().invoke(main, args), 2)


def test_echoed_input_is_cut_to_80_characters(trained):
    runner, run, env = trained
    result = runner.invoke(main, ["predict", str(run / "checkpoint.h5"), "--task", "math",
                                  "1" * 500], env=env)
    line = one_line_error(result, 1)
    assert "500 characters long" in line and "1" * 81 not in line
