"""Real molecules (``datasets.molecules``): RDKit featurisation, the fetch path (checked
sha256, parsed once into the cache), the no-leakage pretraining pool, and the solubility tasks
— on small stand-in files written here (no network), with their sha256 pinned for the test."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinymtl.cli import main

Chem = pytest.importorskip("rdkit.Chem", reason="RDKit (the chem extra) is not installed")

SMILES = ["CCO", "c1ccccc1", "c1ccccc1O", "CC(=O)O", "CCN", "CC(C)O", "C1CCCCC1", "CCCl",
          "c1ccncc1", "CC#N", "OCC(O)CO", "CC(=O)OC", "c1ccc2ccccc2c1", "CCCCCC", "NC(=O)N",
          "CS(C)=O", "C=CC=C", "O=C=O", "CCOCC", "c1ccsc1", "Brc1ccccc1", "CC(C)(C)O",
          "OC(=O)c1ccccc1", "CCCCO", "Nc1ccccc1", "CC[N+](C)(C)C", "FC(F)(F)C", "CCS",
          "C1CCOC1", "c1cc[nH]c1", "O=Cc1ccccc1", "CC(N)C(=O)O", "ClC(Cl)Cl", "CCCCCCCC",
          "Oc1ccc(O)cc1", "CC(C)CC", "c1ccc(cc1)C(=O)O", "N#Cc1ccccc1", "CCOC(=O)C", "OCCO",
          "Cc1ccc(O)cc1"]
TEST = ["CCO", "c1ccccc1O", "CCCCCCO", "Ic1ccccc1", "CCC(=O)O", "OC1CCCCC1", "CCCBr", "CCOC",
        "c1ccoc1", "CC(C)=O", "NCCO", "OC(=O)CC(=O)O"]  # CCO and phenol are in training too
CLASSES = ("(A) low", "(B) medium", "(C) high")


def log_s(smiles):
    return round(-0.5 * len(smiles) + 2.0, 2)


def write_sdf(path, smiles_list):
    writer = Chem.SDWriter(str(path))
    for smiles in smiles_list:
        mol = Chem.MolFromSmiles(smiles)
        value = log_s(smiles)
        mol.SetProp("SOL", str(value))
        mol.SetProp("SOL_classification", CLASSES[0 if value < -2 else 1 if value < 0 else 2])
        mol.SetProp("smiles", smiles)
        writer.write(mol)
    writer.close()


def fetch_fake_molecules(directory, monkeypatch):
    """Stand-ins for every file, under their real names, their sha256 pinned in FILES for the
    test; then the real ``fetch`` path parses them into the cache."""
    from tinymtl.datasets import molecules

    directory.mkdir(parents=True, exist_ok=True)
    write_sdf(directory / "solubility.train.sdf", SMILES)
    write_sdf(directory / "solubility.test.sdf", TEST)
    (directory / "freesolv.csv").write_text("iupac,smiles,expt,calc\r\n" + "".join(
        f"m{k},{s},{-k / 3:.2f},0\r\n" for k, s in enumerate(SMILES[:10])))
    (directory / "chembl_samples.csv").write_text("smiles\n" + "\n".join(SMILES[5:20]) + "\n")
    (directory / "chembl_drugs.csv").write_text("smiles\n" + "\n".join(TEST[2:] + ["C("]) + "\n")
    (directory / "first_5K.smi").write_text("".join(f"{s}\t{k}\n" for k, s in enumerate(
        SMILES[::3] + ["not_a_molecule"])))
    pinned = {name: (where, member, hashlib.sha256(
        (directory / member.split("/")[-1]).read_bytes()).hexdigest())
        for name, (where, member, _) in molecules.FILES.items()}
    monkeypatch.setattr(molecules, "FILES", pinned)
    return molecules.fetch(directory)


@pytest.fixture
def fake_molecules(tmp_path, monkeypatch, data_dir):
    return fetch_fake_molecules(tmp_path / "files", monkeypatch)


def test_featurisation_holds_what_the_docstring_says():
    from tinymtl.datasets import molecules

    mol = Chem.MolFromSmiles("c1ccccc1O")  # phenol: 7 atoms, 7 bonds
    x, edge_index, edge_type, edge_attr, logp, tpsa, descriptors = molecules.featurise(mol)
    assert x.shape == (7, molecules.ATOM_FEATURES) == (7, 36)
    assert edge_index.shape == (2, 14)  # each bond both ways: 6 aromatic, 1 single (C–O)
    assert (edge_type == 3).sum() == 12 and (edge_type == 0).sum() == 2
    assert (edge_attr.sum(1) >= 1).all() and edge_attr.shape == (14, molecules.EDGE_FEATURES)
    oxygen = 6
    assert x[oxygen, molecules.ELEMENTS.index("O")] == 1 and tpsa[oxygen] > 0
    assert tpsa[:6].sum() == 0  # only the hydroxyl is polar
    assert abs(logp.sum() - descriptors["logp"]) < 1e-4  # the contributions add up to log P


def test_fetch_checks_every_file_and_parses_it_once(fake_molecules, tmp_path, monkeypatch):
    from tinymtl.datasets import molecules

    sets = fake_molecules["sets"]
    assert sets["solubility_train"] == {"molecules": len(SMILES), "skipped": 0}
    assert sets["chembl_drugs"]["skipped"] == 1 and sets["nci"]["skipped"] == 1
    train = molecules.load_set("solubility_train")
    assert len(train["graphs"]) == len(SMILES) and train["log_s"][0] == log_s(SMILES[0])
    assert train["smiles"][1] == "c1ccccc1"
    # a changed byte in a source file is refused before anything is parsed
    (tmp_path / "files" / "freesolv.csv").write_text("iupac,smiles,expt,calc\r\n")
    with pytest.raises(molecules.DataError, match="freesolv.csv has sha256"):
        molecules.fetch(tmp_path / "files")


def test_no_test_molecule_is_in_the_pretraining_pool(fake_molecules):
    from tinymtl.datasets import molecules

    pool, test_keys = molecules.pretraining_pool()
    keys = {Chem.MolToInchiKey(Chem.MolFromSmiles(s)) for s in TEST}
    assert test_keys == keys
    pooled = set()
    for k in range(len(pool)):
        graph = pool[np.array([k])]
        pooled.add((graph.x.tobytes(), graph.edge_index.tobytes()))
    test = molecules.load_set("solubility_test")["graphs"]
    for k in range(len(test)):  # not one test graph, however it was written, is in the pool
        graph = test[np.array([k])]
        assert (graph.x.tobytes(), graph.edge_index.tobytes()) not in pooled
    train_only = {Chem.MolToInchiKey(Chem.MolFromSmiles(s)) for s in SMILES} - keys
    assert len(pool) >= len(train_only)  # CCO and phenol left out, the rest kept once


def test_the_solubility_tasks_train_and_smoke(fake_molecules, tmp_path):
    import yaml

    config = {"name": "mol", "tasks": {
        "solubility": {"generator": "molecules", "target": "solubility_class"},
        "log_s": {"generator": "molecules", "target": "log_s"},
        "profile": {"generator": "molecules", "target": "property_profile"}},
        "model": {"encoder": "gat", "hidden": [8], "heads": 2, "graph_pooling": "sum"},
        "training": {"schedule": "joint", "steps": 20, "eval_every": 10, "batch_size": 8},
        "baselines": "none", "linear_baseline_steps": 20}
    path = tmp_path / "mol.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["tasks"]
    assert summary["solubility"]["kind"] == "classification"
    assert summary["log_s"]["test_r2"] is not None and "test_spearman" in summary["log_s"]
    assert summary["profile"]["kind"] == "alignment"
    assert -1 <= summary["profile"]["test_distance_spearman"] <= 1
    for figure in ("solubility_confusion.png", "profile_embedding.png"):
        assert (tmp_path / "run" / figure).exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["data"]
    result = CliRunner().invoke(main, ["run", str(path), "--smoke", "--quiet", "--out",
                                       str(tmp_path / "smoke")])
    assert result.exit_code == 0, result.output


def test_without_the_cache_a_run_says_how_to_fetch(tmp_path, data_dir):
    from tinymtl.datasets import load_tasks, molecules

    with pytest.raises(molecules.DataError, match="tinymtl data fetch molecules"):
        load_tasks({"s": {"generator": "molecules", "target": "log_s"}})


def test_bond_features_reach_the_attention(fake_molecules):
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train.config import validate

    config = validate({"tasks": {"s": {"generator": "molecules", "target": "log_s"}},
                       "model": {"encoder": "gat", "hidden": [8], "heads": 2,
                                 "edge_features": True}, "training": {"steps": 5}})
    tasks = load_tasks(config)
    model = build(config, tasks)
    layer = model.backbone.layers[0]
    assert layer.lin_edge is not None and layer.lin_edge.weight.shape[1] == 6  # bond features
    graphs = tasks["s"].x_train[:4]
    before = model(graphs, "s").numpy()
    graphs.edge_attr[:] = 0  # the same molecules with their bonds' features erased
    assert not np.allclose(model(graphs, "s").numpy(), before)


def test_edge_features_without_any_is_one_line(tmp_path):
    import yaml

    path = tmp_path / "motifs.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"m": {"generator": "motifs", "target": "motif"}},
                                    "model": {"encoder": "gat", "edge_features": True}}))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "model.edge_features" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_bond_types_get_attention_of_their_own(fake_molecules):
    from tinymtl.graph import RelationalGATConv
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train.config import validate

    config = validate({"tasks": {"s": {"generator": "molecules", "target": "log_s"}},
                       "model": {"encoder": "gat", "hidden": [8], "heads": 2,
                                 "relations": True}, "training": {"steps": 5}})
    tasks = load_tasks(config)
    layer = build(config, tasks).backbone.layers[0]
    # the stand-in molecules have single, double, triple and aromatic bonds, + self-loops
    assert isinstance(layer, RelationalGATConv) and layer.num_relations == 4
    assert layer.weight.shape[0] == 5
