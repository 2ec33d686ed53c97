"""GraphCL pretraining (``tinymtl pretrain``, ``runs.pretrain``) on the tests' stand-in molecule
files: it learns (the contrastive loss falls), is bitwise reproducible and resumable, keeps
held-out graphs out of training, writes what a run writes, and its encoder is what fine-tuning
loads with ``model.backbone_from``."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tinymtl.cli import main

pytest.importorskip("rdkit.Chem", reason="RDKit (the chem extra) is not installed")

MODEL = {"encoder": "gat", "hidden": [16, 16], "heads": 2, "graph_pooling": "sum"}


def pretraining_config(**training):
    return {"name": "pre", "seed": 3, "data": {"valid_fraction": 0.2}, "model": dict(MODEL),
            "pretraining": {"steps": 40, "batch_size": 8, "lr": 0.003, "eval_every": 20,
                            "log_every": 10, "checkpoint_every": 20, **training}}


def write(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def fake_molecules(tmp_path, monkeypatch, data_dir):
    from test_molecules import fetch_fake_molecules

    return fetch_fake_molecules(tmp_path / "files", monkeypatch)


def test_pretraining_learns_and_writes_a_run(fake_molecules, tmp_path):
    config = write(tmp_path / "pre.yaml", pretraining_config())
    result = invoke("pretrain", config, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert "before pretraining" in result.output and "model.backbone_from:" in result.output
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoint.h5",
                 "pretraining.png"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    pool = summary["pool"]
    assert pool["train"] + pool["valid"] == pool["graphs"] and pool["valid"] > 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trains = [r for r in rows if r["type"] == "train"]
    assert [r["step"] for r in trains] == [10, 20, 30, 40]
    assert trains[-1]["loss"] < trains[0]["loss"]  # the views of a graph are pulled together
    assert summary["final"]["valid_loss"] < summary["initial"]["valid_loss"]
    assert 0 < summary["peak_rss_mib"] < 4096


def test_held_out_graphs_are_never_trained_on(fake_molecules):
    from tinymtl.runs import pretrain
    from tinymtl.train.config import validate

    config = validate(pretraining_config())
    train, valid, manifest = pretrain.load_pool(config)
    seen = {(train[np.array([k])].x.tobytes(), train[np.array([k])].edge_index.tobytes())
            for k in range(len(train))}
    held = [(valid[np.array([k])].x.tobytes(), valid[np.array([k])].edge_index.tobytes())
            for k in range(len(valid))]
    assert len(valid) == manifest["valid"] > 0
    assert not any(graph in seen for graph in held)


def test_same_seed_same_weights_and_resume_is_bitwise(fake_molecules, tmp_path):
    from tinymtl.train import checkpoint

    config = write(tmp_path / "pre.yaml", pretraining_config(keep_checkpoints=2))
    for out in ("a", "b"):
        assert invoke("pretrain", config, "--out", tmp_path / out, "--quiet").exit_code == 0
    a = checkpoint.load(tmp_path / "a" / "checkpoint.h5")["model_state"]
    b = checkpoint.load(tmp_path / "b" / "checkpoint.h5")["model_state"]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    middle = tmp_path / "a" / "checkpoints" / "pretrain_step_000000020.h5"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "checkpoint.h5").write_bytes(middle.read_bytes())
    (tmp_path / "c" / "metrics.jsonl").write_text((tmp_path / "a" / "metrics.jsonl").read_text())
    result = invoke("pretrain", config, "--out", tmp_path / "c", "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    c = checkpoint.load(tmp_path / "c" / "checkpoint.h5")["model_state"]
    assert all(np.array_equal(a[k], c[k]) for k in a)
    rows = (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()  # trimmed to step 20
    assert [json.loads(r)["step"] for r in rows] == \
        [json.loads(r)["step"] for r in (tmp_path / "a" / "metrics.jsonl").read_text()
         .splitlines()]
    other = write(tmp_path / "other.yaml", pretraining_config(lr=0.01))
    result = invoke("pretrain", other, "--out", tmp_path / "c", "--resume", "--quiet")
    assert result.exit_code != 0 and "different config" in result.output


def test_fine_tuning_starts_from_the_pretrained_encoder(fake_molecules, tmp_path):
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train import checkpoint
    from tinymtl.train.config import validate

    config = write(tmp_path / "pre.yaml", pretraining_config(steps=10, eval_every=5,
                                                             log_every=5))
    assert invoke("pretrain", config, "--out", tmp_path / "pre", "--quiet").exit_code == 0
    saved = checkpoint.load(tmp_path / "pre" / "checkpoint.h5")["model_state"]
    fine = validate({"tasks": {"s": {"generator": "molecules", "target": "log_s"}},
                     "model": dict(MODEL, backbone_from=str(tmp_path / "pre" / "checkpoint.h5")),
                     "training": {"steps": 5}})
    model = build(fine, load_tasks(fine))
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert backbone and all(np.array_equal(backbone[k], saved[k]) for k in backbone)
    wider = dict(fine, model=dict(fine["model"], hidden=[32, 32]))
    with pytest.raises(checkpoint.CheckpointError, match="backbone does not fit"):
        build(wider, load_tasks(wider))


def test_pretraining_refuses_what_it_cannot_do(tmp_path):
    bad = write(tmp_path / "bad.yaml", dict(pretraining_config(), model={"encoder": "mlp"}))
    result = invoke("pretrain", bad)
    assert result.exit_code == 2 and "model.encoder = 'mlp'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    training = write(tmp_path / "train.yaml", {"tasks": {"a": {"generator": "arithmetic"}}})
    result = invoke("pretrain", training)
    assert result.exit_code == 2 and "not a pretraining config" in result.output
    bad = write(tmp_path / "seeds.yaml", pretraining_config())
    result = invoke("run", bad, "--seeds", "2")
    assert result.exit_code == 2 and "one seed" in result.output
