"""Loss weighting methods: their equations on hand-made values."""

import math

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.optim  # noqa: F401  (tm.optim)
from tinymtl.mtl import weighting as W
from tinymtl.mtl.plugin import methods

METHODS = list(methods("weighting"))


def make(name, tasks, kinds=None, static_weights=None, **options):
    """A weighting method bound to ``tasks``, as a trainer would set it up."""
    cls = methods("weighting")[name]
    method = cls(weights=static_weights) if name == "static" else cls(**options)
    return method.bind(tasks, kinds)


def scalar(value):
    return tm.tensor(np.float32(value))


def test_static_and_equal_weights():
    losses = {"a": scalar(2.0), "b": scalar(4.0)}
    assert make("static", ["a", "b"], {}, {"a": 0.5, "b": 3.0}).combine(
        losses).item() == pytest.approx(0.5 * 2 + 3 * 4)
    assert make("equal", ["a", "b"], {}).combine(losses).item() == \
        pytest.approx((2 + 4) / 2)


@pytest.mark.parametrize("kind, optimum", [("classification", lambda L: math.log(2 * L)),
                                           ("regression", lambda L: math.log(L))])
def test_uncertainty_optimum_and_gradient(kind, optimum):
    """∂/∂s [c e^(−s) L + s/2] = −c e^(−s) L + 1/2 (c = 1, or ½ for regression); zero at s*."""
    method = make("uncertainty", ["t"], {"t": kind})
    (s,) = method.parameters()
    c = 0.5 if kind == "regression" else 1.0
    for L, s_value in ((0.8, 0.3), (2.5, -1.0)):
        s.data[...] = s_value
        s.grad = None
        method.combine({"t": scalar(L)}).backward()
        assert float(s.grad[0]) == pytest.approx(-c * math.exp(-s_value) * L + 0.5, rel=1e-5)
        s.data[...] = optimum(L)
        s.grad = None
        method.combine({"t": scalar(L)}).backward()
        assert abs(float(s.grad[0])) < 1e-5
        assert method.weights()["t"] == pytest.approx(c * math.exp(-optimum(L)), rel=1e-5)


def test_uncertainty_trains_to_its_optimum():
    method = make("uncertainty", ["t"], {"t": "classification"})
    optimizer = tm.optim.SGD(method.parameters(), lr=0.2)
    for _ in range(300):
        optimizer.zero_grad()
        method.combine({"t": scalar(1.5)}).backward()
        optimizer.step()
    assert float(method.log_vars["t"].data[0]) == pytest.approx(math.log(3.0), abs=1e-3)


def test_gradnorm_equal_ratios_and_norms_leave_w_unchanged():
    result = W.gradnorm_grad(np.ones(3), np.array([2.0, 2.0, 2.0]), np.array([0.5, 0.5, 0.5]),
                             alpha=1.5)
    np.testing.assert_array_equal(result["grad_w"], 0.0)
    assert result["L_grad"] == 0.0


def test_gradnorm_gradient_by_hand():
    w, norms, ratios = np.array([1.0, 2.0]), np.array([3.0, 1.0]), np.array([0.5, 1.0])
    result = W.gradnorm_grad(w, norms, ratios, alpha=1.0)
    G = np.array([3.0, 2.0])
    r = ratios / ratios.mean()          # [2/3, 4/3]
    target = G.mean() * r               # [5/3, 10/3]
    np.testing.assert_allclose(result["target"], target)
    np.testing.assert_allclose(result["grad_w"], np.sign(G - target) * norms)  # [+3, -1]


def _tiny_model():
    class Tiny(tm.nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = tm.nn.Linear(3, 4)
            self.a, self.b = tm.nn.Linear(4, 1), tm.nn.Linear(4, 1)

        def last_shared_layer(self):
            return self.shared.weight

    return Tiny()


def test_gradnorm_keeps_the_weights_summing_to_the_task_count():
    tm.manual_seed(0)
    model = _tiny_model()
    method = make("gradnorm", ["a", "b"], {})
    optimizer = tm.optim.Adam(list(model.parameters()) + method.parameters(), lr=0.05)
    x = tm.tensor(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    for step in range(20):
        optimizer.zero_grad()
        features = model.shared(x).relu()
        losses = {"a": (model.a(features) ** 2).mean(),
                  "b": ((model.b(features) - 3.0) ** 2).mean() * (1 + step)}
        method.combine(losses, model).backward()
        method.on_before_optimizer_step(None)
        optimizer.step()
        method.on_after_optimizer_step(None, {t: v.item() for t, v in losses.items()})
        assert sum(method.weights().values()) == pytest.approx(2.0, rel=1e-5)
    assert method.weights()["a"] != pytest.approx(1.0)  # it did move


def test_dwa_weights_follow_the_loss_ratios():
    weights = W.dwa_weights({"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 1.0}, temperature=2.0)
    ea, eb = math.exp(0.5 / 2), math.exp(1.0 / 2)
    assert weights["a"] == pytest.approx(2 * ea / (ea + eb))
    assert weights["b"] == pytest.approx(2 * eb / (ea + eb))
    method = make("dwa", ["a", "b"], {}, window=2)
    for losses in ({"a": 1.0, "b": 1.0},) * 4:
        assert method.weights() == {"a": 1.0, "b": 1.0}  # first two windows: w = 1
        method.on_after_optimizer_step(None, losses)
    assert method.weights() == pytest.approx({"a": 1.0, "b": 1.0})  # equal ratios
    for losses in ({"a": 0.5, "b": 1.0},) * 2:
        method.on_after_optimizer_step(None, losses)
    assert method.weights() == pytest.approx(weights)


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip(name):
    options = {"window": 1} if name == "dwa" else {}
    kinds = {"a": "classification", "b": "regression"}
    method = make(name, ["a", "b"], kinds, {"a": 2.0}, **options)
    method.on_step_start(None, ("a", "b"))  # RLW draws its weights
    model = _tiny_model()
    x = tm.tensor(np.ones((4, 3), dtype=np.float32))
    features = model.shared(x).relu()
    losses = {"a": (model.a(features) ** 2).mean() + 1, "b": (model.b(features) ** 2).mean() + 2}
    method.combine(losses, model).backward()
    method.on_after_optimizer_step(None, {t: v.item() for t, v in losses.items()})
    method.on_after_optimizer_step(None, {"a": 0.5, "b": 3.0})
    copy = make(name, ["a", "b"], kinds, {"a": 2.0}, **options)
    copy.load_state_dict(method.state_dict())
    assert copy.weights() == method.weights()
    assert copy.state_dict() == method.state_dict()


# -- in the trainer ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["uncertainty", "gradnorm", "dwa"])
def test_weighted_training_logs_weights_and_resumes_exactly(name, tmp_path, data_dir):
    from test_shapes3 import shapes_config

    from mtl_helpers import train_straight_and_resumed

    from tinymtl.datasets import load_tasks

    config = shapes_config(training={"weighting": name, "dwa_window": 3, "steps": 14,
                                     "log_every": 2, "weight_decay": 0.01,
                                     "optimizer": "adamw"})
    tasks = load_tasks(config["tasks"])
    straight, resumed = train_straight_and_resumed(config, tasks, 7, tmp_path / "c.h5")
    assert resumed.weighting.weights() == straight.weighting.weights()
    weights = straight.weighting.weights()
    assert weights != {"A": 1.0, "B": 1.0, "C": 1.0}  # learned / adapted
    if name == "gradnorm":
        assert sum(weights.values()) == pytest.approx(3.0, rel=1e-5)
    if name == "uncertainty":  # the learned s takes no weight decay: its group has none
        assert straight.optimizer.param_groups[1]["weight_decay"] == 0.0


def test_gradnorm_needs_every_task_in_every_step():
    from test_shapes3 import shapes_config

    from tinymtl.train.config import ConfigError

    with pytest.raises(ConfigError, match="expected a joint or mixed schedule"):
        shapes_config(training={"weighting": "gradnorm", "schedule": "alternating"})


def test_single_task_baseline_trains_its_plain_loss(data_dir, monkeypatch):
    """The multi-task run's weighting and surgery do not leak into its single-task baselines."""
    from test_shapes3 import shapes_config

    from tinymtl.datasets import load_tasks
    from tinymtl.runs import baselines

    config = shapes_config(training={"weighting": "uncertainty", "gradients": "pcgrad"})
    tasks = load_tasks(config["tasks"])
    captured = {}
    original = baselines.Trainer

    def spy(*args, **kwargs):
        trainer = original(*args, **kwargs)
        captured["trainer"] = trainer
        return trainer

    monkeypatch.setattr(baselines, "Trainer", spy)
    baselines.single_task(config, "A", tasks["A"], steps=2, progress=False)
    trainer = captured["trainer"]
    assert type(trainer.weighting) is W.Static and trainer.surgery is None
    assert len(trainer.optimizer.param_groups) == 1  # no learned loss weights
