"""Shared vs private: residual adapters, MMoE, and task-private weights saved on their own."""

import h5py
import numpy as np
import pytest

import tinymtl as tm
from tinymtl.autograd.gradcheck import gradcheck
from tinymtl.mtl.architectures import Adapter, Gate, MixtureFeatures, gate_input

from mtl_helpers import tiny_config, train_straight_and_resumed, write_config


def rand(*shape, seed=0):
    return tm.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("shape", [(4,), (3, 2, 2)])
def test_adapter_gradients(float64, shape):
    adapter = Adapter(shape, 5)
    adapter.up.weight.data[...] = np.random.default_rng(1).standard_normal(
        adapter.up.weight.shape)  # away from its identity start, so every gradient is non-zero
    x = rand(2, *shape)
    gradcheck(lambda *_: adapter(x), [x] + list(adapter.parameters()))


def test_adapter_starts_as_the_identity():
    x = tm.tensor(np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32))
    assert Adapter((6,), 4)(x).numpy().tobytes() == x.numpy().tobytes()


@pytest.mark.parametrize("feature_shape", [(3,), (2, 2, 2)])
def test_gate_gradients_and_mixture(float64, feature_shape):
    gate = Gate(5, 4)
    experts = rand(2, 4, *feature_shape)
    inputs = np.random.default_rng(2).standard_normal((2, 5))
    gradcheck(lambda *_: gate(MixtureFeatures(experts, inputs)),
              [experts] + list(gate.parameters()))
    g = gate.weights(inputs).numpy()
    np.testing.assert_allclose(g.sum(1), 1.0)
    expected = np.einsum("ne,ne...->n...", g, experts.numpy())  # Σ_e g_e f_e
    np.testing.assert_allclose(gate(MixtureFeatures(experts, inputs)).numpy(), expected)


def test_gate_input_is_the_character_histogram():
    ids = np.array([[3, 3, 5, 0, 0], [7, 0, 0, 0, 0]])
    histogram = gate_input(ids, 10)
    assert histogram[0, 3] == pytest.approx(2 / 3) and histogram[0, 5] == pytest.approx(1 / 3)
    assert histogram[1, 7] == 1.0 and histogram[:, 0].sum() == 0.0
    assert gate_input(np.zeros((2, 1, 3, 3), np.float32), 10).shape == (2, 9)


def _built(config):
    from tinymtl.train import config as config_module
    from tinymtl.runs.setup import build, load_tasks

    config = config_module.validate(config)
    tasks = load_tasks(config)
    return config, tasks, build(config, tasks)


def test_private_parameters_are_heads_adapters_and_gates(data_dir):
    _, _, hard = _built(tiny_config())
    _, _, adapters = _built(tiny_config(model={"architecture": "adapters", "adapter_hidden": 8}))
    _, _, mmoe = _built(tiny_config(model={"architecture": "mmoe", "experts": 3}))
    assert set(hard.private_state_dict(["math"])) == {"heads.math.weight", "heads.math.bias"}
    assert {k.split(".")[0] for k in adapters.private_state_dict()} == {"heads", "adapters"}
    assert {k.split(".")[0] for k in mmoe.private_state_dict()} == {"heads", "gates"}
    assert len(mmoe.backbone.experts) == 3 and len(mmoe.last_shared_layer()) == 3
    shared = {id(p) for p in mmoe.shared_parameters()}
    assert not shared & {id(p) for p in mmoe.task_parameters("math")}


@pytest.mark.parametrize("architecture,training", [
    ("adapters", {"schedule": "alternating"}),
    ("mmoe", {"schedule": "mixed", "gradients": "pcgrad"}),
    ("mmoe", {"schedule": "mixed", "weighting": "gradnorm"}),
])
def test_architectures_train_and_resume_exactly(architecture, training, tmp_path, data_dir):
    from tinymtl.train import config as config_module
    from tinymtl.runs.setup import load_tasks

    config = config_module.validate(tiny_config(
        model={"architecture": architecture, "experts": 2, "adapter_hidden": 8},
        training=dict(training, steps=12, log_every=4, eval_every=6)))
    tasks = load_tasks(config)
    straight, _ = train_straight_and_resumed(config, tasks, 5, tmp_path / "c.h5")
    private = straight.model.private_state_dict()
    kinds = {"adapters": "adapters", "mmoe": "gates"}[architecture]
    assert any(key.startswith(kinds) for key in private)
    assert straight.history[-1]["tasks"]["math"]["valid_accuracy"] >= 0.0


def test_export_private_and_load_it_onto_the_shared_backbone(tmp_path, data_dir):
    from click.testing import CliRunner

    from tinymtl.cli import main
    from tinymtl.train import checkpoint
    from tinymtl.runs.setup import load_private, model_from_checkpoint
    from tinymtl.train.metrics import predict_logits

    config = tiny_config(model={"architecture": "adapters", "adapter_hidden": 8},
                         training={"steps": 30, "eval_every": 30})
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(write_config(tmp_path / "a.yaml", config)),
                                  "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    ckpt = tmp_path / "run" / "checkpoint.h5"
    result = runner.invoke(main, ["export-private", str(ckpt), "--task", "math",
                                  "--out", str(tmp_path / "math.h5")])
    assert result.exit_code == 0, result.output
    private = checkpoint.load_private(tmp_path / "math.h5")
    assert private["tasks"] == ["math"]
    assert all(k.split(".")[1] == "math" for k in private["model_state"])
    assert (tmp_path / "math.h5").stat().st_size < ckpt.stat().st_size / 2

    # the trained math path, moved onto a backbone whose math head and adapter were scrambled
    _, tasks, model = model_from_checkpoint(checkpoint.load(ckpt))
    expected = predict_logits(model, "math", tasks["math"].x_test)
    model.load_state_dict({k: np.full_like(v, 0.5)
                           for k, v in model.private_state_dict(["math"]).items()}, strict=False)
    assert predict_logits(model, "math", tasks["math"].x_test).tobytes() != expected.tobytes()
    assert load_private(model, tmp_path / "math.h5") == ["math"]
    assert predict_logits(model, "math", tasks["math"].x_test).tobytes() == expected.tobytes()

    result = runner.invoke(main, ["eval", str(ckpt), "--private", str(tmp_path / "math.h5"),
                                  "--task", "math", "--json"])
    assert result.exit_code == 0, result.output


def test_private_weights_that_do_not_fit_are_refused(tmp_path, data_dir):
    from tinymtl.train import checkpoint
    from tinymtl.runs.setup import load_private

    _, _, model = _built(tiny_config())
    state = model.private_state_dict(["math"])
    state["heads.math.weight"] = np.zeros((3, 3), np.float32)
    checkpoint.save_private(tmp_path / "bad.h5", state, ["math"], {})
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(checkpoint.CheckpointError, match=r"bad.h5: 'heads.math.weight': shape"):
        load_private(model, tmp_path / "bad.h5")
    assert all(before[k].tobytes() == v.tobytes() for k, v in model.state_dict().items())
    with h5py.File(tmp_path / "bad.h5", "a") as f:
        f.attrs["format"] = "something else"
    checkpoint.seal(tmp_path / "bad.h5")  # a well-formed file of another format
    with pytest.raises(checkpoint.CheckpointError, match="not a tinymtl task-private"):
        load_private(model, tmp_path / "bad.h5")
