"""``device: cuda`` without a GPU: every path runs on ``fake_cuda``, whose arrays refuse to mix
with NumPy's as CuPy's do, so a batch, target, parameter, optimizer state or checkpoint load
that skips its move to the device fails here, in CI, instead of on a user's GPU.

The fake device computes with the CPU kernels, so a run on it must also end **bitwise equal**
to the same run on the CPU: placement moves data, it never changes the math.
"""

import json

import numpy as np
import pytest

import fake_cuda
import pinned_runs
from tinymtl.backend import set_device, to_device, to_numpy
from tinymtl.backend.device import device_of
from tinymtl.backend.kernels import stand_in_for_cuda


@pytest.fixture
def cuda():
    """Device 'cuda' is the fake for the test's duration."""
    stand_in_for_cuda(fake_cuda.module, fake_cuda.kernels)
    try:
        yield fake_cuda
    finally:
        stand_in_for_cuda(None, None)
        set_device("cpu")


def test_the_fake_device_refuses_numpy_arrays_as_cupy_does(cuda):
    on_device = to_device(np.ones(3, np.float32), "cuda")
    assert device_of(on_device) == "cuda" and device_of(np.ones(3)) == "cpu"
    with pytest.raises(TypeError, match="NumPy array"):
        on_device * np.ones(3, np.float32)
    with pytest.raises(TypeError, match="NumPy array"):
        on_device + np.asarray(2.0)  # a 0-d NumPy array too (CuPy: "Unsupported type")
    with pytest.raises(TypeError, match="kernel relu_backward"):
        cuda.kernels.relu_backward(on_device, np.ones(3, np.float32))
    assert device_of(on_device * 2 + on_device.sum()) == "cuda"  # scalars and 0-d results
    back = to_numpy(on_device)
    assert type(back) is np.ndarray and back.tolist() == [1, 1, 1]


def test_a_cnn_step_keeps_everything_on_the_device(cuda):
    import tinymtl
    import tinymtl.nn as nn
    import tinymtl.nn.functional as F
    from tinymtl.optim import Adam

    set_device("cuda")
    tinymtl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3), nn.ReLU(), nn.GlobalAvgPool2d(), nn.Linear(8, 3))
    optimizer = Adam(model.parameters(), lr=1e-2)
    x = tinymtl.tensor(np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32),
                       device="cuda")
    target = tinymtl.tensor(np.array([0, 1, 2, 0, 1]), device="cuda")
    F.cross_entropy(model(x), target).backward()
    optimizer.step()
    arrays = [p.data for p in model.parameters()] + [p.grad for p in model.parameters()]
    arrays += [v for state in optimizer.state.values() for v in state.values()
               if isinstance(v, np.ndarray)]
    assert arrays and all(device_of(a) == "cuda" for a in arrays)
    with pytest.raises(TypeError, match="NumPy array"):  # a batch left on the host
        model(tinymtl.tensor(np.zeros((1, 1, 8, 8), np.float32)))


DEVICE_ARMS = [  # every example and continual method, and the multi-task methods that keep
    # state of their own (weights, gradients per task, experts)
    name for name in pinned_runs.arms()
    if name.startswith(("example:", "continual:")) or name in (
        "weighting:gradnorm", "weighting:uncertainty", "weighting:dwa", "gradients:pcgrad",
        "gradients:mgda", "gradients:cagrad", "architecture:mmoe", "architecture:adapters",
        "training:accumulate", "baselines:token_controlled")]


@pytest.mark.slow
def test_every_example_and_method_runs_on_the_device_to_the_cpus_bits(cuda, tmp_path,
                                                                      monkeypatch):
    """Run, evaluate, checkpoint and (for continual methods) every stage's bookkeeping, on the
    device: the digests of weights, optimizer state and metrics are the CPU run's."""
    monkeypatch.setenv("TINYMTL_DATA_DIR", str(tmp_path))
    recorded = pinned_runs.recording_for()
    pinned_runs.prepare_data(tmp_path)
    arms = pinned_runs.arms()
    different = []
    for name in DEVICE_ARMS:
        raw = dict(arms[name], device="cuda")
        on_device = pinned_runs.run_arm(raw, tmp_path / "cuda" / name.replace(":", "_"))
        set_device("cpu")
        if recorded is not None:
            on_cpu = recorded["arms"][name]
        else:  # (digests recorded elsewhere: run the CPU arm here)
            on_cpu = pinned_runs.run_arm(arms[name], tmp_path / "cpu" / name.replace(":", "_"))
        if on_device != on_cpu:
            different.append(f"{name}: cpu {on_cpu}, cuda {on_device}")
    assert not different, "\n".join(different)


@pytest.mark.parametrize("config", ["kindergarten_math", "graph_motifs", "kindergarten_then_math"])
def test_smoke_on_the_device_trains_evaluates_resumes_and_predicts(cuda, tmp_path, config,
                                                                   monkeypatch):
    """``--smoke``: train, evaluate, checkpoint, resume to the same bits, predict."""
    from click.testing import CliRunner

    from tinymtl.cli import main

    monkeypatch.setenv("TINYMTL_DATA_DIR", str(tmp_path))
    pinned_runs.prepare_data(tmp_path)
    result = CliRunner().invoke(main, ["run", f"examples/{config}.yaml", "--smoke", "--quiet",
                                       "--device", "cuda", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "bitwise the same weights" in result.output and "predicted" in result.output


def test_eval_and_predict_of_a_checkpoint_run_on_the_device(cuda, tmp_path, monkeypatch):
    """A checkpoint evaluated and queried with ``--device cuda`` gives the CPU's answers."""
    from click.testing import CliRunner

    from tinymtl.cli import main

    monkeypatch.setenv("TINYMTL_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    settings = ["training.warmup_steps=0", "baselines=none", "linear_baseline=false"]
    result = runner.invoke(main, ["run", "examples/kindergarten_math.yaml", "--quiet",
                                  "--steps", "20", "--out", str(tmp_path / "r")]
                           + [arg for setting in settings for arg in ("--set", setting)])
    assert result.exit_code == 0, result.output
    checkpoint = str(tmp_path / "r" / "checkpoint.h5")
    answers = {}
    for device in ("cpu", "cuda"):
        evaluated = runner.invoke(main, ["eval", checkpoint, "--json", "--device", device])
        predicted = runner.invoke(main, ["predict", checkpoint, "--task", "math", "7+5", "--json",
                                         "--device", device])
        assert evaluated.exit_code == 0 and predicted.exit_code == 0, evaluated.output
        answers[device] = (json.loads(evaluated.output), predicted.output)
    set_device("cpu")
    assert answers["cuda"] == answers["cpu"]


def test_the_gpu_step_benchmark_runs_on_the_device(cuda, capsys):
    """``benchmarks/step_time.py --device cuda`` (what a lent GPU measures) runs end to end."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    import step_time

    step_time.main(["--device", "cuda", "--models", "mlp", "shapes3_cnn", "--repeats", "2",
                    "--warmup", "1", "--peak-size", "256", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["mlp", "shapes3_cnn"]
    assert all(r["device"] == "cuda" and r["tinymtl_ms"] > 0 for r in rows)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("conftest")._cuda_available(),
                    reason="CuPy or a CUDA device is not available")
def test_on_a_real_gpu_a_cnn_step_gives_the_cpus_loss_and_gradients():
    """cuBLAS and CuPy's kernels round differently from the CPU's: equal to float32 accuracy."""
    import tinymtl
    import tinymtl.nn as nn
    import tinymtl.nn.functional as F

    results = {}
    x = np.random.default_rng(0).standard_normal((6, 3, 12, 12)).astype(np.float32)
    target = np.array([0, 1, 2, 0, 1, 2])
    for device in ("cpu", "cuda"):
        set_device(device)
        tinymtl.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(8, 16, 3), nn.ReLU(), nn.GlobalAvgPool2d(),
                              nn.Linear(16, 3))
        loss = F.cross_entropy(model(tinymtl.tensor(x, device=device)),
                               tinymtl.tensor(target, device=device))
        loss.backward()
        results[device] = [loss.item()] + [to_numpy(p.grad) for p in model.parameters()]
    set_device("cpu")
    for on_cpu, on_gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-6)
