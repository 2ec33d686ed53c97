"""The food–compound graph (``datasets.food_graph``): the generator plants what it says (each
class's markers by its chemical rule, the difficulty knob), the CSV loader reads a user's files
and names what is wrong in them, and both tasks train on the food nodes of one graph — on the
tests' stand-in molecules."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tinymtl.cli import main

Chem = pytest.importorskip("rdkit.Chem", reason="RDKit (the chem extra) is not installed")


@pytest.fixture
def fake_molecules(tmp_path, monkeypatch, data_dir):
    from test_molecules import fetch_fake_molecules

    return fetch_fake_molecules(tmp_path / "files", monkeypatch)


def pretrained(tmp_path, config):
    """``tinymtl pretrain`` of a pretraining ``config`` (its name: the file and the folder);
    the checkpoint it wrote."""
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / config["name"]
    result = CliRunner().invoke(main, ["pretrain", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out / "checkpoint.h5"


def foods_held(made):
    """{food: the compounds it contains}."""
    graph, n = made.graph, made.num_foods
    contains = graph.edge_type == 0
    held = {food: set() for food in range(n)}
    for compound, food in graph.edge_index[:, contains].T:
        held[int(food)].add(int(compound) - n)
    return held


def test_the_generator_plants_markers_by_their_chemical_rule(fake_molecules):
    from tinymtl.datasets import food_graph as fg

    made = fg.generate(num_foods=40, cross_marker=0.0, seed=1)
    again = fg.generate(num_foods=40, cross_marker=0.0, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(
        (made.graph.x, made.graph.edge_index, made.nutrients, made.food_class),
        (again.graph.x, again.graph.edge_index, again.nutrients, again.food_class)))
    patterns = {c: Chem.MolFromSmarts(rule) for c, (_, rule) in fg.MARKER_RULES.items()}
    for name, compounds in made.markers.items():
        for k in compounds:  # its own group, and no other class's
            mol = Chem.MolFromSmiles(made.compounds[k])
            assert [c for c, p in patterns.items() if mol.HasSubstructMatch(p)] == [name]
    all_markers = {k for compounds in made.markers.values() for k in compounds}
    for food, compounds in foods_held(made).items():
        own = set(made.markers[made.classes[made.food_class[food]]])
        assert compounds & all_markers <= own and compounds & own  # none of another class
        assert compounds - all_markers  # and background compounds
    assert set(made.train) | set(made.test) == set(range(40))
    assert not set(made.train) & set(made.test)
    types = made.graph.edge_type
    assert (types == 0).sum() == (types == 1).sum() and (made.nutrients > 0).all()


def test_the_difficulty_knob_adds_other_classes_markers(fake_molecules):
    from tinymtl.datasets import food_graph as fg

    made = fg.generate(num_foods=40, cross_marker=1.0, seed=1)
    for food, compounds in foods_held(made).items():
        own = made.classes[made.food_class[food]]
        others = {k for c, ks in made.markers.items() if c != own for k in ks}
        assert len(compounds & others) == 1


def write_csv(directory, foods, contents, nutrients):
    directory.mkdir(exist_ok=True)
    for name, header, rows in (("foods.csv", "id,name,class", foods),
                               ("contents.csv", "food_id,compound,concentration", contents),
                               ("nutrients.csv", "food_id,nutrient,amount", nutrients)):
        (directory / name).write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return directory


FOODS = [f"f{k},food {k},{'sweet' if k % 2 else 'sour'}" for k in range(12)]
CONTENTS = [f"f{k},{s},{1 + k}" for k in range(12)
            for s in (("CC(=O)O", "CCO") if k % 2 == 0 else ("OCC(O)CO", "CCO"))]
NUTRIENTS = [f"f{k},{n},{k * (j + 1)}" for k in range(12) for j, n in enumerate(("fat", "sugar"))]


def test_the_csv_loader_reads_a_users_files(tmp_path):
    from tinymtl.datasets import food_graph as fg

    made = fg.read_csv(write_csv(tmp_path / "food", FOODS, CONTENTS, NUTRIENTS))
    assert made.classes == ["sour", "sweet"] and made.num_foods == 12
    assert len(made.compounds) == 3 and made.markers == {}
    assert made.nutrient_names == ["fat", "sugar"] and made.nutrients[3].tolist() == [3.0, 6.0]
    assert (made.graph.edge_type == 0).sum() == 24


@pytest.mark.parametrize("broken, message", [
    ({"contents": CONTENTS + ["f99,CCO,1"]}, "contents.csv: line 26: food_id 'f99'"),
    ({"contents": CONTENTS + ["f1,not-a-molecule,1"]}, "is not a SMILES RDKit can read"),
    ({"contents": CONTENTS + ["f1,CCO,lots"]}, "concentration = 'lots'; expected a number"),
    ({"nutrients": ["f1,fat"]}, "amount = None"),
    ({"foods": ["f0,a,b", "f0,c,d"]}, "a food id appears twice"),
])
def test_bad_csv_files_are_one_line_naming_the_file(tmp_path, broken, message):
    from tinymtl.datasets import food_graph as fg
    from tinymtl.errors import DataError

    parts = {"foods": FOODS, "contents": CONTENTS, "nutrients": NUTRIENTS, **broken}
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fg.read_csv(write_csv(tmp_path / "food", **parts))


def test_both_tasks_train_on_the_food_nodes(fake_molecules, tmp_path):
    config = {"name": "food", "tasks": {
        "food_class": {"generator": "food_graph", "target": "food_class", "foods": 60},
        "nutrients": {"generator": "food_graph", "target": "nutrients", "foods": 60}},
        "model": {"encoder": "gat", "relations": True, "hidden": [16], "heads": 2},
        "training": {"schedule": "joint", "steps": 30, "eval_every": 10, "batch_size": 16},
        "baselines": "none", "linear_baseline_steps": 30}
    path = tmp_path / "food.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["tasks"]
    assert summary["food_class"]["kind"] == "classification"
    assert summary["nutrients"]["kind"] == "alignment"
    assert summary["food_class"]["linear_accuracy"] is not None
    each = summary["nutrients"]["test_profile_per_output"]  # per nutrient, on test
    assert len(each["rmse"]) == len(each["r2"]) == 12
    assert np.mean(each["r2"]) == pytest.approx(summary["nutrients"]["test_profile_r2"])
    for figure in ("nutrients_embedding.png", "nutrients_profile.png",
                   "food_class_confusion.png"):
        assert (tmp_path / "run" / figure).stat().st_size > 0
    result = CliRunner().invoke(main, ["run", str(path), "--smoke", "--quiet", "--out",
                                       str(tmp_path / "smoke")])
    assert result.exit_code == 0, result.output


def test_salient_compounds_are_ranked_and_scored_per_class(fake_molecules, tmp_path):
    from tinymtl.graph.salience import edge_attention
    from tinymtl.runs.setup import model_from_checkpoint
    from tinymtl.train import checkpoint

    config = {"name": "food", "tasks": {
        "food_class": {"generator": "food_graph", "target": "food_class", "foods": 60}},
        "model": {"encoder": "gat", "relations": True, "hidden": [16], "heads": 2},
        "training": {"steps": 30, "eval_every": 10, "batch_size": 16},
        "baselines": "none", "linear_baseline": False,
        "salience": {"task": "food_class", "draw": 2}}
    path = tmp_path / "food.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "run" / "salience.json").read_text())
    assert set(found["methods"]) == {"attention", "gradient_x_input", "random"}
    for scores in found["methods"].values():
        assert 0 <= scores["auroc"] <= 1 and 0 <= scores["precision_at_k"] <= 1
    assert (tmp_path / "run" / "salient_compounds.png").exists()
    # the table: every class's listed compounds, a class's own markers ticked, others named
    table = (tmp_path / "run" / "salient_compounds.md").read_text()
    for name, listed in found["classes"].items():
        assert f"## {name}" in table
        for item in listed["attention"]:
            mark = "" if not item["planted"] else \
                " ✓" if item["planted"] == name else f" ({item['planted']})"
            assert f"`{item['compound']}`{mark} | {item['score']:.3f}" in table
    # the attention ranking is the one its definition gives, recomputed from the checkpoint
    _, tasks, model = model_from_checkpoint(checkpoint.load(tmp_path / "run" / "checkpoint.h5"))
    data = tasks["food_class"]
    model.eval()
    foods = data.facts["num_foods"]
    edge_index, alpha = edge_attention(model.backbone, data.x_train.graph)
    name = data.classes[0]
    own = data.x_train.nodes[data.y_train == 0]
    # per compound: the mean over the class's foods holding it of α · the food's in-degree
    ratios = {}
    for k in np.flatnonzero((edge_index[0] >= foods) & np.isin(edge_index[1], own)):
        food = edge_index[1, k]
        uniform = 1 / (edge_index[1] == food).sum()
        ratios.setdefault(int(edge_index[0, k]) - foods, []).append(alpha[k] / uniform)
    expected = {compound: np.mean(values) for compound, values in ratios.items()}
    best = max(expected, key=expected.get)
    top = found["classes"][name]["attention"][0]
    assert top["compound"] == data.facts["compounds"][best]
    assert top["score"] == pytest.approx(expected[best], rel=1e-5)
    assert len(found["classes"][name]["attention"]) <= len(expected)  # candidates only
    assert top["planted"] == next((c for c, ks in data.facts["markers"].items() if best in ks),
                                  None)


def test_each_foods_own_graph_is_the_food_and_its_compounds(fake_molecules):
    from tinymtl.datasets import food_graph as fg

    made = fg.generate(num_foods=20, seed=2)
    pool = fg.ego_graphs(made)
    held = foods_held(made)
    assert len(pool) == 20
    for food in (0, 7, 19):
        one = pool[np.array([food])]
        assert one.node_type.tolist() == [fg.FOOD] + [fg.COMPOUND] * len(held[food])
        assert np.array_equal(one.x[0], made.graph.x[food])
        contains = one.edge_index[:, one.edge_type == 0]
        assert sorted(contains[0].tolist()) == list(range(1, len(held[food]) + 1))
        assert set(contains[1].tolist()) == {0}


def test_pretraining_on_the_food_graph_loads_into_fine_tuning(fake_molecules, tmp_path):
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train import checkpoint
    from tinymtl.train.config import validate

    model = {"encoder": "gat", "relations": True, "hidden": [16], "heads": 2}
    pre = {"name": "pre", "data": {"source": "food_graph", "foods": 40}, "model": model,
           "pretraining": {"steps": 6, "batch_size": 8, "eval_every": 3, "log_every": 3}}
    saved = checkpoint.load(pretrained(tmp_path, pre))["model_state"]
    fine = validate({"tasks": {"f": {"generator": "food_graph", "target": "food_class",
                                     "foods": 40}},
                     "model": dict(model, backbone_from=str(tmp_path / "pre" / "checkpoint.h5")),
                     "training": {"steps": 5}})
    state = build(fine, load_tasks(fine)).state_dict()
    backbone = {k: v for k, v in state.items() if k.startswith("backbone.")}
    assert backbone and all(np.array_equal(backbone[k], saved[k]) for k in backbone)


def test_shuffled_labels_permute_only_the_training_targets(fake_molecules):
    from tinymtl.datasets import load_tasks

    specs = {"f": {"generator": "food_graph", "target": "food_class", "foods": 60}}
    true = load_tasks(specs)["f"]
    shuffled = load_tasks({"f": dict(specs["f"], shuffle_labels=True)})["f"]
    assert np.array_equal(shuffled.y_test, true.y_test)
    assert sorted(shuffled.y_train) == sorted(true.y_train)
    assert not np.array_equal(shuffled.y_train, true.y_train)


def test_uniform_attention_finds_no_marker(fake_molecules, tmp_path):
    """The control that must fail: attention that prefers nothing scores every candidate 1 and
    recovers markers at chance (AUROC ½) — however often a class's foods hold its markers."""
    from tinymtl.runs import salience
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train.config import validate

    config = validate({"tasks": {"f": {"generator": "food_graph", "target": "food_class",
                                       "foods": 60}},
                       "model": {"encoder": "gat", "relations": True, "hidden": [16],
                                 "heads": 2}, "training": {"steps": 5}})
    tasks = load_tasks(config)
    model = build(config, tasks)
    for layer in model.backbone.layers:  # every attention logit 0: a uniform softmax
        layer.att_src.data[...] = 0
        layer.att_dst.data[...] = 0
    found = salience.compounds(model, "f", tasks["f"], tmp_path, draw=0)
    for listed in found["classes"].values():
        assert all(item["score"] == pytest.approx(1.0) for item in listed["attention"])
    assert found["methods"]["attention"]["auroc"] == pytest.approx(0.5)


def test_compounds_can_be_described_by_a_pretrained_molecule_encoder(fake_molecules, tmp_path):
    """``compound_features: <checkpoint>``: each compound's node features are its embedding by
    the molecule encoder of a molecule pretraining (standardised), the run trains on them, and
    a checkpoint that is not one is refused in one line."""
    from tinymtl.datasets import food_graph, molecules
    from tinymtl.runs.setup import load_tasks, molecule_encoder
    from tinymtl.train.config import validate

    pre = {"name": "mol", "data": {"source": "molecules"},
           "model": {"encoder": "gat", "hidden": [8], "heads": 2, "graph_pooling": "sum"},
           "pretraining": {"steps": 4, "batch_size": 8, "eval_every": 2, "log_every": 2}}
    encoder = str(pretrained(tmp_path, pre))
    spec = {"generator": "food_graph", "target": "food_class", "foods": 40,
            "compound_features": encoder}
    config = validate({"tasks": {"f": spec}, "model": {"encoder": "gat", "hidden": [8]},
                       "training": {"steps": 4, "batch_size": 8}})
    data = load_tasks(config)["f"]
    graph, foods = data.x_train.graph, 40
    compounds = data.facts["compounds"]
    vectors = molecule_encoder(encoder)(compounds).astype(np.float64)
    assert vectors.shape == (len(compounds), 8)  # (the encoder's width)
    expected = (vectors - vectors.mean(0)) / np.where(vectors.std(0) > 0, vectors.std(0), 1)
    np.testing.assert_allclose(graph.x[foods:, :-2], expected, rtol=1e-5, atol=1e-5)
    assert (graph.x[:foods, :-2] == 0).all() and (graph.x[foods:, -1] == 1).all()
    # the fingerprint graph has the same foods, compounds and edges: only the features differ
    bits = food_graph.generate(40, 0.1, 0)
    assert bits.compounds == compounds
    assert np.array_equal(bits.graph.edge_index, graph.edge_index)
    run = {"name": "enc", "tasks": {"f": spec}, "baselines": "none",
           "model": {"encoder": "gat", "relations": True, "hidden": [8], "heads": 2},
           "training": {"steps": 4, "batch_size": 8, "eval_every": 2}}
    path = tmp_path / "enc.yaml"
    path.write_text(yaml.safe_dump(run))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "enc"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    # a fine-tuning checkpoint (not a molecule pretraining's) is refused, in one line
    path.write_text(yaml.safe_dump(dict(run, tasks={"f": dict(
        spec, compound_features=str(tmp_path / "enc" / "checkpoint.h5"))})))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "bad"),
                                       "--quiet"])
    assert result.exit_code != 0 and "not a molecule pretraining" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert molecules.graphs_from_smiles(["CCO"]).shape[0] == 1


def test_the_memory_check_counts_the_whole_graph_once_a_step(fake_molecules):
    """A node task's encoder runs on the whole graph once a step: its activations are a fixed
    part plus a part per food in the batch, not the whole graph times the batch size."""
    from tinymtl.runs import memory
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train.config import validate

    config = validate({"tasks": {"f": {"generator": "food_graph", "target": "food_class",
                                       "foods": 60}},
                       "model": {"encoder": "gat", "hidden": [16], "heads": 2},
                       "training": {"steps": 4, "batch_size": 16}})
    tasks = load_tasks(config)
    model = build(config, tasks)
    one = memory.batch_graph_bytes(model, "f", tasks["f"].x_train[:1])
    sizes = {}
    for batch in (16, 32):
        config["training"]["batch_size"] = batch
        sizes[batch] = memory.step(config, model, tasks)["activations"]
    per_food = (sizes[32] - sizes[16]) / (2 * 16)
    assert 0 < per_food < one / 10  # a food's readout: far less than the graph's pass
    assert sizes[16] == 2 * (one - per_food) + 2 * 16 * per_food  # fixed + B × per food
    assert sizes[16] < 2 * 16 * one / 4
