"""Atom salience (``graph.salience``, ``train.scores.salience_scores``, ``runs.salience``):
each method is what its definition says, the scores are what theirs say, and a run on the
tests' stand-in molecules writes them (and refuses a task without per-atom truth)."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.graph import GraphEncoder, GraphSet
from tinymtl.graph.batch import Graph
from tinymtl.graph.salience import attention_salience, gradient_input_salience
from tinymtl.mtl.model import MultiTaskModel
from tinymtl import nn
from tinymtl.backend import manual_seed
from tinymtl.train.scores import salience_scores


def small_set(seed=0, graphs=5):
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(graphs):
        n = int(rng.integers(3, 7))
        edges = [(k, k + 1) for k in range(n - 1)] + [(0, n - 1)]
        edge_index = np.array(edges + [(b, a) for a, b in edges]).T
        made.append(Graph(x=rng.normal(size=(n, 4)).astype(np.float32), edge_index=edge_index))
    return GraphSet.from_graphs(made)


def small_model():
    manual_seed(0)
    encoder = GraphEncoder(4, (8, 8), heads=2, pooling="sum")
    return MultiTaskModel(encoder, {"y": nn.Linear(8, 1), "c": nn.Linear(8, 3)})


def test_attention_received_sums_to_the_nodes_in_every_layer():
    graph = small_set().collate()
    salience = attention_salience(small_model().backbone, graph)
    # each node's incoming attention sums to 1 per head: what all nodes receive is N
    assert salience.sum() == pytest.approx(graph.num_nodes, rel=1e-5)
    assert (salience > 0).all()


@pytest.mark.parametrize("task", ["y", "c"])
def test_gradient_times_input_is_the_derivative_along_each_nodes_features(task, float64):
    """Σ_f x_jf ∂y/∂x_jf = d/dt y(x with row j scaled by 1 + t) at t = 0: central differences
    (float64)."""
    model = small_model()
    graph = small_set(1).collate()
    graph.x = graph.x.astype(np.float64)
    salience = gradient_input_salience(model, task, graph)
    outputs = model(graph, task).numpy()
    chosen = outputs.argmax(1) if outputs.shape[1] > 1 else np.zeros(len(outputs), int)
    step = 1e-6
    for node in range(graph.num_nodes):
        values = []
        for t in (step, -step):
            x = graph.x.copy()
            x[node] *= 1 + t
            out = model(Graph(x=x, edge_index=graph.edge_index, batch=graph.batch,
                              ptr=graph.ptr), task).numpy()
            values.append(out[graph.batch[node], chosen[graph.batch[node]]])
        numeric = (values[0] - values[1]) / (2 * step)
        assert salience[node] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_salience_scores_follow_their_definitions():
    sizes = [4, 3, 5]
    positive = np.array([1, 0, 0, 0,  0, 0, 0,  1, 1, 0, 0, 0], bool)  # graph 2 has none
    values = np.array([-1.0, 0.5, 1.0, 2.0,  0, 1, 2,  -2, -1, 0, 1, 2])
    perfect = np.where(positive, 1.0, 0.0) + np.arange(12) * 1e-3
    got = salience_scores(perfect, sizes, positive, values)
    assert got["auroc"] == 1.0 and got["precision_at_k"] == 1.0 and got["graphs_scored"] == 2
    inverted = -perfect
    got = salience_scores(inverted, sizes, positive, values)
    assert got["auroc"] == 0.0 and got["precision_at_k"] == 0.0
    # ρ per graph, then the mean: graph 0 is rank-perfect, graph 1 too, graph 2 reversed
    ordered = np.array([0, 1, 2, 3,  0, 1, 2,  4, 3, 2, 1, 0], float)
    assert salience_scores(ordered, sizes, positive, values)["spearman"] == pytest.approx(1 / 3)


@pytest.fixture
def fake_molecules(tmp_path, monkeypatch, data_dir):
    pytest.importorskip("rdkit.Chem", reason="RDKit (the chem extra) is not installed")
    from test_molecules import fetch_fake_molecules

    return fetch_fake_molecules(tmp_path / "files", monkeypatch)


def test_a_molecules_run_scores_and_draws_salience(fake_molecules, tmp_path):
    config = {"name": "sal", "tasks": {"log_s": {"generator": "molecules", "target": "log_s"}},
              "model": {"encoder": "gat", "hidden": [8], "heads": 2, "graph_pooling": "sum"},
              "training": {"steps": 20, "eval_every": 10, "batch_size": 8},
              "baselines": "none", "linear_baseline": False,
              "salience": {"task": "log_s", "draw": 3}}
    path = tmp_path / "sal.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "run" / "salience.json").read_text())
    assert written == json.loads((tmp_path / "run" / "summary.json").read_text())["salience"]
    assert set(written["methods"]) == {"attention", "gradient_x_input", "random"}
    assert written["polar_atoms"] > 0 and written["methods"]["random"]["polar_graphs_scored"] > 0
    assert (tmp_path / "run" / "salience_molecules.png").stat().st_size > 1000


def test_salience_needs_a_task_with_per_atom_truth(tmp_path, data_dir):
    base = {"tasks": {"m": {"generator": "motifs", "target": "motif"}},
            "model": {"encoder": "gat"}, "training": {"steps": 5}}
    for salience, message in (({"task": "nope"}, "unknown task 'nope'"),
                              ({"task": "m"}, "no per-atom truth")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(dict(base, salience=salience)))
        result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "r")])
        assert result.exit_code != 0 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
