"""`tinymtl run CONFIG --smoke` on every file in examples/: every code path of each config
(training, evaluation, checkpoints, resume to bitwise the same weights, predict) in seconds.
MNIST configs run on the tests' fake MNIST, converted through the real `data fetch` path, and
molecule configs on the tests' stand-in molecule files (skipped without RDKit)."""

import importlib.util
import pathlib

import pytest
from click.testing import CliRunner

from tinymtl.cli import main

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    from test_mnist import fetch_fake_mnist

    directory = tmp_path_factory.mktemp("smoke-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYMTL_DATA_DIR", str(directory / "cache"))
        (directory / "idx").mkdir()
        fetch_fake_mnist(directory / "idx", train=600, test=200, cycle_labels=True)
        if importlib.util.find_spec("rdkit") is not None:
            from test_molecules import fetch_fake_molecules

            fetch_fake_molecules(directory / "molecules", patch)
    return {"TINYMTL_DATA_DIR": str(directory / "cache")}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_smokes(example, fake_mnist, tmp_path):
    if "molecules" in example.read_text() and \
            importlib.util.find_spec("rdkit") is None:
        pytest.skip("RDKit (the chem extra) is not installed")
    result = CliRunner().invoke(main, ["run", str(example), "--smoke", "--quiet", "--out",
                                       str(tmp_path / "smoke")], env=fake_mnist)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines and all(line.startswith("smoke ") and ": ok in " in line for line in lines), \
        result.output
    assert all("_step_000000010.h5 to bitwise the same weights" in line for line in lines)


def test_smoke_takes_no_resume_or_seeds(tmp_path):
    example = EXAMPLES[0]
    for flags in (["--resume"], ["--seeds", "2"]):
        result = CliRunner().invoke(main, ["run", str(example), "--smoke", *flags])
        assert result.exit_code == 2 and result.output.startswith("error: --smoke runs")
        assert len(result.output.strip().splitlines()) == 1


def test_the_linear_baseline_trains_for_its_configured_steps_and_smoke_shrinks_them(
        tmp_path, monkeypatch):
    # (its 1,000 default steps were most of a smoke run's time on the graph examples)
    from tinymtl.runs import baselines, smoke
    from tinymtl.train import config as config_module

    taken = []
    real = baselines.linear
    monkeypatch.setattr(baselines, "linear",
                        lambda data, steps, **kw: taken.append(steps) or real(data, steps, **kw))
    config = config_module.load(EXAMPLES_DIR / "kindergarten_math.yaml")
    assert config["linear_baseline"] and config["linear_baseline_steps"] == 1000
    assert smoke.shrink(config)["linear_baseline_steps"] == smoke.STEPS
    result = CliRunner().invoke(main, ["run", str(EXAMPLES_DIR / "kindergarten_math.yaml"),
                                       "--quiet", "--out", str(tmp_path / "run"),
                                       "--set", "training.steps=2",
                                       "--set", "training.warmup_steps=0",
                                       "--set", "baselines=none",
                                       "--set", "linear_baseline_steps=7"])
    assert result.exit_code == 0, result.output
    assert taken == [7, 7]  # one linear model per task
