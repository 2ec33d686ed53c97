"""The plugin protocol: hook order, the registry and its config errors, a method added from
outside the library, state that survives a resume, and the two methods added through it (RLW,
MGDA-UB)."""

import json

import numpy as np
import pytest

import tinymtl as tm
from tinymtl.backend.random import Generator
from tinymtl.mtl import plugin as P
from tinymtl.mtl import surgery as S
from tinymtl.mtl import weighting as W
from tinymtl.options import ConfigError, Float, Int
from tinymtl.train import config as config_module

from mtl_helpers import small_config, tiny_config, train_straight_and_resumed


class Recorder(P.Plugin):
    """Writes down every hook call (and what loss_terms saw)."""

    name = "recorder"

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, attribute):
        value = object.__getattribute__(self, attribute)
        if attribute.startswith("on_") or attribute in ("setup", "loss_terms"):
            calls = object.__getattribute__(self, "calls")

            def recorded(*args):
                calls.append(attribute)
                return value(*args)
            return recorded
        return value


def small_tasks(config):
    from tinymtl.runs.setup import load_tasks

    return load_tasks(config)


def test_hooks_run_in_the_order_of_the_loop(data_dir):
    from tinymtl.runs.multitask import make_trainer
    from tinymtl.runs.setup import build

    config = small_config(training={
        "steps": 2, "log_every": 1, "eval_every": 2, "checkpoint_every": 1, "schedule": "mixed",
        "weighting": "equal"})
    tasks = small_tasks(config)
    trainer = make_trainer(config, tasks, build(config, tasks), progress=False)
    recorder = Recorder()
    seen_terms = []

    class Watcher(P.Plugin):
        name = "watcher"

        def loss_terms(self, trainer, terms, batch):
            seen_terms.append({k: v.item() for k, v in terms.items()})
            return terms

    trainer.plugins += [recorder, Watcher()]
    saved = []
    trainer.fit(on_checkpoint=lambda t: saved.append(t.step))
    trainer.end_stage(0, ["math"])
    step = ["on_step_start", "loss_terms", "on_before_optimizer_step",
            "on_after_optimizer_step", "on_train_log", "on_log"]  # (on_log: the row written)
    assert recorder.calls == (["on_fit_start"] + step + ["on_checkpoint"] + step
                              + ["on_evaluate", "on_log", "on_fit_end", "on_stage_end"])
    assert saved == [1]  # a checkpoint every step but the last (the run saves that itself)
    # the loss weighting runs first: later plugins see its terms, w_t L_t with w = 1/2
    assert [sorted(t) for t in seen_terms] == [["kindergarten", "math"]] * 2
    assert isinstance(trainer.plugins[0], W.Equal)


def test_plugin_order_and_uniqueness_are_checked():
    from tinymtl.train.trainer import order_plugins

    equal, pcgrad = W.Equal(), S.PCGrad()
    assert order_plugins([pcgrad, equal]) == [equal, pcgrad]  # weighting first
    assert isinstance(order_plugins([pcgrad])[0], W.Static)    # the default weighting
    with pytest.raises(ValueError, match="one loss weighting per trainer"):
        order_plugins([W.Equal(), W.DWA()])
    with pytest.raises(ValueError, match="two plugins named 'pcgrad'"):
        order_plugins([S.PCGrad(), S.PCGrad()])
    with pytest.raises(ValueError, match="at most one plugin may own the backward pass"):
        order_plugins([S.PCGrad(), S.MGDA()])


@pytest.mark.parametrize("training, message", [
    ({"weighting": "magic"}, "training.weighting = 'magic': expected one of static, equal"),
    ({"weighting": {"method": "gradnorm", "beta": 1}},
     "unknown key 'training.weighting.beta'; gradnorm takes alpha"),
    ({"weighting": {"method": "gradnorm", "alpha": -1}, "schedule": "mixed"},
     "training.weighting.alpha = -1: expected a number >= 0.0"),
    ({"gradnorm_alpha": -1, "weighting": "gradnorm", "schedule": "mixed"},
     "training.gradnorm_alpha = -1: expected a number >= 0.0"),
    ({"weighting": {"alpha": 1}}, "expected a method name or a mapping with 'method'"),
    ({"gradients": {"method": "cagrad", "c": "big"}, "schedule": "mixed"},
     "training.gradients.c = 'big': expected a number"),
    ({"weighting": "rlw"}, "training.weighting = 'rlw': it needs every task in each step"),
    ({"gradients": "mgda_ub"}, "training.gradients = 'mgda_ub': it needs every task"),
])
def test_method_config_errors_name_the_key_the_value_and_what_is_allowed(training, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_module.validate(tiny_config(training=training))


def test_nested_and_flat_method_options_resolve_to_one_form():
    nested = config_module.validate(tiny_config(training={
        "schedule": "mixed", "weighting": {"method": "dwa", "window": 7},
        "gradients": {"method": "cagrad", "c": 0.25}}))
    flat = config_module.validate(tiny_config(training={
        "schedule": "mixed", "weighting": "dwa", "dwa_window": 7, "dwa_temperature": 2.0,
        "gradients": "cagrad", "cagrad_c": 0.25, "gradnorm_alpha": 3.0}))  # not dwa's: ignored
    assert nested["training"] == flat["training"]
    assert nested["training"]["weighting"] == {"method": "dwa", "temperature": 2.0, "window": 7}
    assert nested["training"]["gradients"] == {"method": "cagrad", "c": 0.25}
    assert config_module.validate(json.loads(json.dumps(nested))) == nested  # idempotent
    sequence = config_module.validate(tiny_config(continual={
        "stages": ["kindergarten", "math"], "method": "si", "si_c": 0.3, "ewc_lambda": 5.0}))
    assert sequence["continual"] == {"stages": ["kindergarten", "math"], "scenario": "task",
                                     "reset_optimizer": True, "method": "si", "c": 0.3,
                                     "xi": 0.1}
    with pytest.raises(ConfigError, match="unknown key 'continual.lambd'"):
        config_module.validate(tiny_config(continual={"method": "si", "lambd": 1.0}))


def test_a_plugin_checks_its_options_like_a_config():
    assert W.GradNorm().alpha == 1.5 and W.GradNorm(alpha=0.5).options() == {"alpha": 0.5}
    with pytest.raises(ConfigError, match="gradnorm.alpha = -2: expected a number >= 0.0"):
        W.GradNorm(alpha=-2)
    with pytest.raises(ConfigError, match="unknown key 'gradnorm.beta'"):
        W.GradNorm(beta=1)


# -- a method from outside the library ----------------------------------------------------------
@pytest.fixture
def scaled_weighting():
    """A loss weighting defined here, registered for the test only."""

    @P.register
    class Scaled(W.LossWeighting):
        """w_t = factor (for every task)."""

        name = "scaled_for_test"
        OPTIONS = {"factor": Float(default=0.5, positive=True)}

        def initial_weight(self, task):
            return self.factor

    @P.register
    class StepCounter(P.Plugin):
        """A callback with state: counts the steps and keeps the last losses as an array."""

        name = "step_counter_for_test"
        OPTIONS = {"every": Int(default=1, low=1)}

        def __init__(self, **options):
            super().__init__(**options)
            self.steps, self.losses = 0, np.zeros(0)

        def on_after_optimizer_step(self, trainer, losses):
            self.steps += 1
            self.losses = np.array(sorted(losses.values()), dtype=np.float64)

        def on_train_log(self, trainer, row):
            row["counted_steps"] = self.steps

        def state_dict(self):
            return {"steps": self.steps, "losses": self.losses}

        def load_state_dict(self, state):
            self.steps, self.losses = state["steps"], np.array(state["losses"])

    yield Scaled, StepCounter
    del P.REGISTRY["weighting"]["scaled_for_test"], P.REGISTRY["callback"][StepCounter.name]


def test_a_method_defined_outside_the_library_runs_from_a_config(scaled_weighting, tmp_path,
                                                                  data_dir):
    from tinymtl.runs import run

    config = small_config(
        training={"steps": 6, "log_every": 3, "eval_every": 6,
                  "weighting": {"method": "scaled_for_test", "factor": 0.25}},
        callbacks=["step_counter_for_test"])
    config["name"] = "outside"
    summary = run(config, tmp_path / "run", progress=False)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in metrics.splitlines()]
    train = [r for r in rows if r["type"] == "train"]
    assert [r["counted_steps"] for r in train] == [3, 6]
    assert {t["weight"] for r in train for t in r["tasks"].values()} == {0.25}
    assert summary["weighting"] == "scaled_for_test"
    from tinymtl.train import checkpoint

    saved = checkpoint.load(tmp_path / "run" / "checkpoint.h5")["plugin_states"]
    assert saved["step_counter_for_test"]["steps"] == 6
    assert saved["scaled_for_test"]["w"] == {"kindergarten": 0.25, "math": 0.25}


def test_every_plugin_state_survives_a_resume_bitwise(scaled_weighting, tmp_path, data_dir):
    """Several stateful plugins in one run (learned weights, PCGrad's random order and
    statistics, a callback's array), stopped mid-run and resumed: identical at the end."""
    config = small_config(
        training={"steps": 12, "schedule": "mixed", "weighting": "uncertainty",
                  "gradients": "pcgrad", "log_every": 2, "eval_every": 6},
        callbacks=[{"method": "step_counter_for_test", "every": 2}])
    tasks = small_tasks(config)
    straight, resumed = train_straight_and_resumed(config, tasks, 5, tmp_path / "c.h5")
    a, b = straight.plugin_states(), resumed.plugin_states()
    assert a.keys() == b.keys() == {"uncertainty", "pcgrad", "step_counter_for_test"}
    assert a["uncertainty"] == b["uncertainty"] and a["pcgrad"] == b["pcgrad"]
    assert a["step_counter_for_test"]["steps"] == b["step_counter_for_test"]["steps"] == 12
    assert a["step_counter_for_test"]["losses"].tobytes() == \
        b["step_counter_for_test"]["losses"].tobytes()
    assert resumed.plugin("step_counter_for_test").every == 2


# -- RLW --------------------------------------------------------------------------------------------
def test_rlw_draws_softmax_of_a_standard_normal_each_step():
    method = W.RLW().bind(["a", "b", "c"])
    method.generator = Generator(7)
    reference = np.random.Generator(np.random.PCG64(7))
    for _ in range(3):
        method.on_step_start(None, ("a", "b", "c"))
        draw = reference.standard_normal(3)
        expected = np.exp(draw) / np.exp(draw).sum()
        np.testing.assert_allclose(list(method.weights().values()), expected, rtol=1e-12)
        assert sum(method.weights().values()) == pytest.approx(1.0)
    losses = {t: tm.tensor(np.float32(v)) for t, v in zip("abc", (1.0, 2.0, 3.0))}
    assert method.combine(losses).item() == pytest.approx(float(expected @ [1, 2, 3]), rel=1e-6)


def test_rlw_trains_and_resumes_exactly(tmp_path, data_dir):
    config = small_config(training={
        "steps": 10, "schedule": "mixed", "weighting": "rlw", "log_every": 2})
    straight, resumed = train_straight_and_resumed(config, small_tasks(config), 4,
                                                   tmp_path / "c.h5")
    assert straight.weighting.weights() == resumed.weighting.weights()
    assert straight.weighting.weights() != {"kindergarten": 0.5, "math": 0.5}


# -- MGDA-UB ----------------------------------------------------------------------------------------
def test_mgda_ub_solves_min_norm_on_the_representation_gradients():
    """Shared parameters get ∂z/∂θᵀ · T Σ α_i ∇_z L_i with α the min-norm weights of the
    ∇_z L_i; each head gets its own task's gradient."""
    from tinymtl.autograd import grad
    from tinymtl.mtl.model import MultiTaskModel

    tm.manual_seed(3)
    backbone = tm.nn.Sequential(tm.nn.Linear(4, 5), tm.nn.Tanh())
    model = MultiTaskModel(backbone, {t: tm.nn.Linear(5, 2) for t in "abc"})
    x = tm.tensor(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    targets = {t: np.random.default_rng(k).standard_normal((6, 2)).astype(np.float32)
               for k, t in enumerate("abc")}

    def terms_of(z):
        return {t: ((model.forward_heads(z, t) - tm.tensor(targets[t])) ** 2).mean()
                for t in "abc"}

    z = model.features(x)
    terms = terms_of(z)
    z_grads = [grad(terms[t], [z], retain_graph=True)[0].ravel() for t in "abc"]
    alpha = S.min_norm_weights(z_grads)
    combined = (3 * (alpha @ np.stack(z_grads).astype(np.float64))).astype(np.float32)
    expected_shared = grad(z, list(backbone.parameters()),
                           grad_outputs=[combined.reshape(z.shape)], retain_graph=True)
    expected_heads = {t: grad(terms[t], list(model.heads[t].parameters()), retain_graph=True)
                      for t in "abc"}

    class Stand:  # what MGDA-UB asks of the trainer
        def task_parameters(self, task):
            return model.task_parameters(task)

    Stand.model = model
    method = S.MGDAUB().bind(list("abc"), Generator(0))
    model.zero_grad()
    z = model.features(x)
    assert method.backward(Stand(), terms_of(z), P.Batch("joint", tuple("abc"), x, None, z))
    for p, g in zip(backbone.parameters(), expected_shared):
        np.testing.assert_allclose(p.grad, g, rtol=1e-5, atol=1e-7)
    for t in "abc":
        for p, g in zip(model.heads[t].parameters(), expected_heads[t]):
            np.testing.assert_allclose(p.grad, g, rtol=1e-6, atol=1e-8)
    assert method.statistics()["a|b"]["steps"] == 1
    # the min-norm point: Σ α_i ∇_z L_i is orthogonal-or-better to every ∇_z L_i
    d = alpha @ np.stack(z_grads).astype(np.float64)
    assert all(float(g @ d) >= float(d @ d) * (1 - 1e-6) for g in z_grads)


def test_mgda_ub_trains_a_joint_model_and_resumes_exactly(tmp_path, data_dir):
    config = small_config(training={
        "steps": 8, "schedule": "mixed", "gradients": "mgda_ub", "log_every": 2})
    straight, resumed = train_straight_and_resumed(config, small_tasks(config), 3,
                                                   tmp_path / "c.h5")
    assert straight.surgery.statistics() == resumed.surgery.statistics()
    assert straight.surgery.statistics()["kindergarten|math"]["steps"] == 8


def test_docs_methods_page_is_the_registry_listing():
    """docs/methods.md shows what `tinymtl methods` prints (regenerate it when a method or an
    option changes: its listing block is exactly ``config.method_listing()``)."""
    import pathlib

    page = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "methods.md").read_text()
    listing = page.split("```\n")[-2]
    assert listing.rstrip("\n") == config_module.method_listing()
