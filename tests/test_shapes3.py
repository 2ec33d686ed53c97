"""The three-task shapes workload: shared image set, task kinds, heads, stop-gradient, frozen
backbone, joint batches, loss weights, regression, and ``tinymtl diagnose``."""

import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

import tinymtl as tm
from tinymtl.autograd import Tensor
from tinymtl.cli import main
from tinymtl.datasets import load_tasks, shapes
from tinymtl.train import config as config_module
from tinymtl.runs import diagnostics
from tinymtl.train.config import ConfigError
from tinymtl.runs import run
from tinymtl.runs.multitask import make_trainer
from tinymtl.runs.setup import build
from tinymtl.train.metrics import evaluate, task_summary

SIZES = {"train_size": 240, "test_size": 60}


def shapes_config(**overrides):
    config = {
        "name": "shapes_tiny", "seed": 1,
        "tasks": {
            "A": dict(generator="shapes3", target="shape", **SIZES),
            "B": dict(generator="shapes3", target="orientation", head="spatial", **SIZES),
            "C": dict(generator="shapes3", target="intensity", **SIZES),
        },
        "model": {"encoder": "cnn", "channels": [4, 8, 8], "padding": 1, "features": 0},
        "training": {"schedule": "joint", "steps": 12, "batch_size": 16, "eval_every": 6,
                     "log_every": 6, "warmup_steps": 0},
        "baselines": False, "linear_baseline": False,
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and section != "tasks":
            config[section].update(values)
        else:
            config[section] = values
    return config_module.validate(config)


# -- data -----------------------------------------------------------------------------------------
def test_three_targets_share_one_image_array_and_label_it_correctly(data_dir):
    config = shapes_config()
    tasks = load_tasks(config["tasks"], seed=0)
    a, b, c = tasks["A"], tasks["B"], tasks["C"]
    assert a.x_train is b.x_train is c.x_train and a.x_test is c.x_test
    assert a.x_train.shape == (240, 1, 32, 32) and a.x_train.dtype == np.float32
    assert (a.kind, b.kind, c.kind) == ("classification", "classification", "regression")
    assert (a.num_outputs, b.num_outputs, c.num_outputs) == (10, 32, 1)
    attributes = a.test_attributes
    np.testing.assert_array_equal(a.y_test, attributes["shape"])
    np.testing.assert_array_equal(c.y_test, attributes["intensity"])
    expected = [shapes.orientation_bin(s, g) for s, g in zip(attributes["shape"],
                                                              attributes["angle"])]
    np.testing.assert_array_equal(b.y_test, expected)
    # the cache hands back the same arrays; a damaged file is regenerated identically
    again = load_tasks(config["tasks"], seed=0)["A"]
    np.testing.assert_array_equal(again.x_train, a.x_train)
    for path in data_dir.glob("shapes3-*.h5"):
        path.write_bytes(b"not hdf5")
    regenerated = load_tasks(config["tasks"], seed=0)["B"]
    np.testing.assert_array_equal(regenerated.x_test, b.x_test)
    np.testing.assert_array_equal(regenerated.y_test, b.y_test)


def test_well_posed_orientation_folds_symmetry_into_the_first_bins(data_dir):
    spec = dict(generator="shapes3", target="orientation", well_posed=True, **SIZES)
    data = load_tasks({"B": spec}, seed=0)["B"]
    shape_ids = data.train_attributes["shape"]
    for k, name in enumerate(shapes.SHAPES):
        labels = data.y_train[shape_ids == k]
        order = shapes.SYMMETRY[name]
        limit = 1 if order == 0 else int(np.ceil(shapes.ORIENTATION_BINS / order))
        assert labels.max(initial=0) < limit, name


@pytest.mark.parametrize("change, message", [
    ({"tasks": {"A": {"generator": "shapes3"}}}, "missing key 'tasks.A.target'"),
    ({"tasks": {"A": {"generator": "shapes3", "target": "size"}}},
     "tasks.A.target = 'size': expected one of shape, orientation, intensity"),
    ({"tasks": {"A": {"generator": "math", "target": "shape"}}},
     "tasks.A.target: only the multi_mnist, shapes3, motifs, molecules and food_graph sources "
     "take it; 'math' does not"),
    ({"tasks": {"A": {"generator": "shapes3", "target": "shape", "digits": [1]}}},
     "tasks.A.digits: only the mnist source takes it; 'shapes3' does not"),
    ({"tasks": {"A": {"generator": "shapes3", "target": "shape", "well_posed": True}}},
     "tasks.A.well_posed: only an orientation"),
    ({"tasks": {"A": {"generator": "shapes3", "target": "shape", "head": "linear"}}},
     "tasks.A.head = 'linear': the backbone gives a feature map"),
    ({"model": {"encoder": "conv", "features": 0}}, "model.features = 0: only the cnn"),
])
def test_config_errors_name_the_key(change, message):
    config = shapes_config()
    raw = json.loads(json.dumps(config))
    for section, values in change.items():
        if section == "tasks":
            raw["tasks"] = values
        else:
            raw[section].update(values)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config_module.validate(raw, "x.yaml")


# -- model and trainer ------------------------------------------------------------------------------
def _grads(module):
    return [None if p.grad is None else p.grad.copy() for p in module.parameters()]


def test_heads_read_the_feature_map(data_dir):
    config = shapes_config(tasks={
        "A": dict(generator="shapes3", target="shape", head="gap", **SIZES),
        "B": dict(generator="shapes3", target="orientation", head="flatten", **SIZES),
        "C": dict(generator="shapes3", target="intensity", head="spatial", **SIZES)})
    tasks = load_tasks(config["tasks"])
    model = build(config, tasks)
    assert model.backbone.out_shape == (8, 8, 8)  # Conv-Pool-Conv-Pool-Conv on 32x32
    x = Tensor(tasks["A"].x_train[:5])
    assert model(x, "A").shape == (5, 10)
    assert model(x, "B").shape == (5, 32)
    assert model(x, "C").shape == (5, 1)


def test_stop_gradient_keeps_a_task_out_of_the_backbone(data_dir):
    config = shapes_config(tasks={
        "A": dict(generator="shapes3", target="shape", **SIZES),
        "C": dict(generator="shapes3", target="intensity", stop_gradient=True, **SIZES)})
    tasks = load_tasks(config["tasks"])
    model = build(config, tasks)
    x = Tensor(tasks["C"].x_train[:8])
    model(x, "C").sum().backward()
    assert all(g is None or not g.any() for g in _grads(model.backbone))
    assert all(g is not None and g.any() for g in _grads(model.heads["C"]))
    model.zero_grad()
    model(x, "A").sum().backward()
    assert any(g is not None and g.any() for g in _grads(model.backbone))


def test_frozen_backbone_trains_only_the_heads(data_dir):
    config = shapes_config(model={"freeze_backbone": True, "batch_norm": True})
    tasks = load_tasks(config["tasks"])
    model = build(config, tasks)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    trainer = make_trainer(config, tasks, model, progress=False)
    for _ in range(3):
        trainer.train_step()
    after = model.state_dict()
    for key in before:  # weights and batch-norm statistics of the backbone stay put
        same = np.array_equal(before[key], after[key])
        assert same == key.startswith("backbone."), key
    assert model.backbone.training is False and model.heads.training is True


def test_joint_loss_is_the_weighted_sum_over_every_head(data_dir):
    weights = {"A": 0.5, "B": 2.0, "C": 3.0}
    config = shapes_config(tasks={
        name: dict(spec, loss_weight=weights[name])
        for name, spec in shapes_config()["tasks"].items()})
    tasks = load_tasks(config["tasks"])
    model = build(config, tasks)
    trainer = make_trainer(config, tasks, model, progress=False)
    state = copy.deepcopy(trainer.samplers["A"].state_dict())
    terms, per_task, _ = trainer._loss("joint", ("A", "B", "C"))
    loss = sum(term.item() for term in terms.values())
    trainer.samplers["A"].load_state_dict(state)
    index = trainer.samplers["A"].next(16)
    x = Tensor(tasks["A"].x_train[index])
    expected = 0.0
    for task, part in zip("ABC", per_task):
        assert part[0] == task and np.array_equal(part[1], tasks["A"].x_train[index])
        outputs = model(x, task)
        if task == "C":
            own = ((outputs.data[:, 0] - tasks["C"].y_train[index]) ** 2).mean()
        else:
            own = tm.nn.functional.cross_entropy(outputs, tasks[task].y_train[index]).item()
        expected += weights[task] * own
    assert loss == pytest.approx(expected, rel=1e-5)


def test_joint_schedule_refuses_tasks_with_different_inputs(data_dir):
    """In the config (one line, before any data is made), and in the Trainer itself."""
    different = {"A": dict(generator="shapes3", target="shape", **SIZES),
                 "D": dict(generator="shapes3", target="shape", train_size=250, test_size=60)}
    with pytest.raises(ConfigError, match="a joint schedule .* needs tasks that label the "
                                          "same examples"):
        shapes_config(tasks=different)
    config = shapes_config()
    config["tasks"] = config_module.validate(
        dict(shapes_config(), tasks=different, training={"schedule": "alternating"}))["tasks"]
    tasks = load_tasks(config["tasks"])
    with pytest.raises(ValueError, match="joint schedule needs tasks that label the same"):
        make_trainer(config, tasks, build(config, tasks), progress=False)


def test_loss_weight_scales_an_alternating_step_gradient_exactly(data_dir):
    grads = []
    for weight in (1.0, 4.0):
        config = shapes_config(
            tasks={"A": dict(generator="shapes3", target="shape", loss_weight=weight, **SIZES)},
            training={"schedule": "alternating"})
        tasks = load_tasks(config["tasks"])
        trainer = make_trainer(config, tasks, build(config, tasks), progress=False)
        trainer._loss("alternating", ("A",))[0]["A"].backward()
        grads.append(_grads(trainer.model))
    for g1, g4 in zip(*grads):
        np.testing.assert_array_equal(g4, 4.0 * g1)  # x4 is exact in floating point


def test_regression_metrics_are_mae_and_the_summary_reports_them(data_dir, tmp_path):
    config = shapes_config(linear_baseline=True, baselines=True)
    summary = run(config, tmp_path / "run", progress=False)
    c = summary["tasks"]["C"]
    assert c["kind"] == "regression" and "test_accuracy" not in c
    assert 0 < c["test_mae"] < 1 and c["best_mae"] <= c["valid_mae"]
    for key in ("baseline_mae", "linear_mae", "mean_predictor_mae", "transfer"):
        assert isinstance(c[key], float), key
    assert summary["tasks"]["A"]["kind"] == "classification"
    assert summary["roundtrip"] == {"weights_bitwise_equal": True, "outputs_bitwise_equal": True}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train_row = next(r for r in rows if r["type"] == "train" and r["run"] == "multitask")
    assert "mae" in train_row["tasks"]["C"] and "accuracy" in train_row["tasks"]["A"]
    assert (tmp_path / "run" / "C_curves.png").stat().st_size > 0


def test_evaluate_and_summary_for_regression_by_hand():
    class Constant(tm.nn.Module):
        def forward(self, x, task=None):
            return x * 0 + 0.5

    x = np.zeros((4, 1), dtype=np.float32)
    y = np.array([0.5, 0.7, 0.1, 0.5], dtype=np.float32)
    result = evaluate(Constant(), None, x, y, kind="regression")
    assert result["test_mae"] == pytest.approx((0 + 0.2 + 0.4 + 0) / 4)
    assert result["test_loss"] == pytest.approx((0.04 + 0.16) / 4)
    history = [{"step": s, "tasks": {"C": {"valid_mae": m}}} for s, m in ((1, 0.3), (2, 0.1),
                                                                         (3, 0.2))]
    test = {"tasks": {"C": {"test_mae": 0.25}}}
    assert task_summary(history, "C", "regression", test) == {
        "test_mae": 0.25, "valid_mae": 0.2, "best_mae": 0.1, "best_step": 2,
        "forgetting": pytest.approx(0.5)}
    legacy = [{"step": s, "tasks": {"C": {"test_mae": m}}} for s, m in ((1, 0.3), (2, 0.2))]
    assert task_summary(legacy, "C", "regression") == {  # a run without a validation split
        "test_mae": 0.2, "best_mae": 0.2, "best_step": 2, "forgetting": 0.0}


def test_backbone_from_loads_weights_and_rejects_a_mismatch(data_dir, tmp_path):
    source = shapes_config()
    run(source, tmp_path / "source", progress=False)
    path = str(tmp_path / "source" / "checkpoint.h5")
    tasks = load_tasks(source["tasks"])
    trained = build(source, tasks, pretrained=False)
    trained.load_state_dict(tm.train.checkpoint.load(path)["model_state"])
    config = shapes_config(model={"backbone_from": path, "freeze_backbone": True}, seed=7)
    model = build(config, tasks)
    for key, value in trained.backbone.state_dict().items():
        np.testing.assert_array_equal(model.backbone.state_dict()[key], value)
    other = shapes_config(model={"backbone_from": path, "channels": [4, 8, 16]})
    with pytest.raises(tm.train.CheckpointError, match="its backbone does not fit"):
        build(other, tasks)


# -- diagnose ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished tiny run, shared by the diagnose tests."""
    root = tmp_path_factory.mktemp("shapes_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYMTL_DATA_DIR", str(root / "data-cache"))
        run(shapes_config(), root / "run", progress=False)
        yield root / "run"


def test_diagnostics_by_hand():
    uniform = np.full((3, 4), 0.25)
    np.testing.assert_allclose(diagnostics.entropy(uniform), np.log(4))
    assert diagnostics.entropy(np.array([[1.0, 0.0]]))[0] == 0.0
    matrix = diagnostics.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    b_correct = np.array([True, False, True, True])
    given = diagnostics.accuracy_given(b_correct, np.array([0, 0, 1, 1]),
                                       np.array([0, 1, 1, 1]), ["p", "q"])
    assert given["b_accuracy_given_a_correct"] == 1.0
    assert given["b_accuracy_given_a_wrong"] == 0.0
    assert given["per_a_class"]["p"] == {"count": 2, "a_accuracy": 0.5, "b_accuracy": 0.5}
    square, arrow = shapes.SHAPES.index("square"), shapes.SHAPES.index("arrow")
    ambiguity = diagnostics.label_ambiguity(np.array([square, arrow]),
                                            np.array([False, True]), well_posed=False)
    assert ambiguity["per_shape"]["square"]["distinguishable_bins"] == 8
    assert ambiguity["per_shape"]["circle"]["ceiling"] == 1 / 32
    assert ambiguity["ceiling"] == pytest.approx((0.25 + 1.0) / 2)
    assert ambiguity["share_of_ceiling"] == pytest.approx(0.5 / 0.625)
    assert diagnostics.label_ambiguity(np.array([square]), np.array([True]),
                                       well_posed=True)["ceiling"] == 1.0


def test_diagnose_writes_every_artefact(tiny_run):
    result = CliRunner().invoke(main, ["diagnose", str(tiny_run), "--task", "B",
                                       "--probe-steps", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    out = tiny_run / "diagnose_B"
    for name in ("confusion.png", "samples.png", "by_class.png", "report.json"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["given"] == "A"
    assert np.array(report["confusion"]).sum() == report["test_items"] == 60
    assert set(report["given_accuracy"]["per_a_class"]) == set(shapes.SHAPES)
    assert report["entropy"]["uniform_max_nats"] == pytest.approx(np.log(32))
    assert 0 <= report["probe"]["frozen_probe_accuracy"] <= 1
    assert report["oracle"]["conditioned_on"] == "A"
    assert 0 < report["ambiguity"]["ceiling"] < 1
    assert "symmetry ceiling" in result.output


@pytest.mark.parametrize("args, message", [
    (["--task", "C"], "is a regression task"),
    (["--task", "Z"], "unknown task 'Z'"),
    (["--task", "B", "--given", "C"], "a regression task has no classes"),
])
def test_diagnose_errors_are_one_line(tiny_run, args, message):
    result = CliRunner().invoke(main, ["diagnose", str(tiny_run), *args, "--quiet"])
    assert result.exit_code != 0 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_diagnose_without_a_run_says_so(tmp_path):
    result = CliRunner().invoke(main, ["diagnose", str(tmp_path), "--task", "B"])
    assert result.exit_code != 0 and "no checkpoint.h5 here" in result.output


def test_predict_points_image_tasks_to_eval(tiny_run):
    result = CliRunner().invoke(main, ["predict", str(tiny_run / "checkpoint.h5"), "--task", "A",
                                       "square"])
    assert result.exit_code == 2 and "reads images" in result.output


def test_eval_reports_mae_for_regression(tiny_run):
    result = CliRunner().invoke(main, ["eval", str(tiny_run / "checkpoint.h5"), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert set(scores["C"]) == {"test_mae", "test_loss", "test_rmse", "test_r2", "test_spearman"}
    assert set(scores["A"]) == {"test_accuracy", "test_loss", "test_macro_f1", "test_weighted_f1",
                                "test_auroc", "test_per_class", "test_confusion"}
    confusion = np.array(scores["A"]["test_confusion"])  # classes x classes, every test image
    assert confusion.shape == (len(scores["A"]["test_per_class"]["f1"]),) * 2
    assert confusion.sum() == sum(scores["A"]["test_per_class"]["support"])


def test_per_task_learning_rate_is_its_own_parameter_group(data_dir):
    config = shapes_config(
        tasks={"A": dict(generator="shapes3", target="shape", lr=0.05, **SIZES),
               "C": dict(generator="shapes3", target="intensity", **SIZES)},
        training={"optimizer": "sgd", "momentum": 0.0, "lr": 0.01, "lr_schedule": "cosine"})
    tasks = load_tasks(config["tasks"])
    model = build(config, tasks)
    trainer = make_trainer(config, tasks, model, progress=False)
    shared, head_a = trainer.optimizer.param_groups
    assert {id(p) for p in head_a["params"]} == {id(p) for p in model.heads["A"].parameters()}
    assert (shared["lr"], head_a["lr"]) == (0.01, 0.05)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    trainer.train_step()
    for name, parameter in model.named_parameters():
        rate = 0.05 if name.startswith("heads.A.") else 0.01
        if parameter.grad is not None:  # SGD without momentum: Δθ = −lr · g
            np.testing.assert_allclose(before[name] - parameter.data, rate * parameter.grad,
                                       rtol=1e-4, atol=1e-7)
    trainer.train_step()
    assert head_a["lr"] / shared["lr"] == pytest.approx(5.0)  # the schedule scales both


def test_bad_backbone_from_is_one_line_and_writes_nothing(data_dir, tmp_path):
    from mtl_helpers import write_config

    config = json.loads(json.dumps(shapes_config(
        model={"backbone_from": str(tmp_path / "missing.h5")})))
    path = write_config(tmp_path / "bad.yaml", config)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 1 and "missing.h5: checkpoint not found" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
