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


def two_stage_config(tmp_path, **model):
    """A fine-tuning config whose first stage is pre.yaml (beside it, named relatively)."""
    write(tmp_path / "pre.yaml", pretraining_config(steps=10, eval_every=5, log_every=5,
                                                    checkpoint_every=5))
    return write(tmp_path / "tune.yaml", {
        "name": "tune", "seed": 5, "tasks": {"s": {"generator": "molecules", "target": "log_s"}},
        "model": dict(MODEL, pretrain="pre.yaml", **model),
        "training": {"steps": 6, "batch_size": 8, "eval_every": 3, "checkpoint_every": 3},
        "baselines": "none", "linear_baseline": False})


def test_one_command_pretrains_then_fine_tunes_as_two_commands_do(fake_molecules, tmp_path,
                                                                  monkeypatch):
    from tinymtl.train import checkpoint

    config = two_stage_config(tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # the stage's file is found beside the config
    result = invoke("run", config, "--out", tmp_path / "both", "--quiet")
    assert result.exit_code == 0, result.output
    assert "pretraining stage" in result.output and "10 steps" in result.output
    stage = tmp_path / "both" / "pretraining"
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert summary["pretraining"]["checkpoint"] == str(stage / "checkpoint.h5")
    assert summary["pretraining"]["steps"] == 10
    assert yaml.safe_load((stage / "config.yaml").read_text())["seed"] == 5  # the run's seed
    # the same, by hand: pretrain with the run's seed, then fine-tune from its checkpoint
    assert invoke("pretrain", tmp_path / "pre.yaml", "--seed", "5", "--out", tmp_path / "pre",
                  "--quiet").exit_code == 0
    by_hand = dict(yaml.safe_load(config.read_text()))
    by_hand["model"] = dict(MODEL, backbone_from=str(tmp_path / "pre" / "checkpoint.h5"))
    result = invoke("run", write(tmp_path / "by_hand.yaml", by_hand), "--out",
                    tmp_path / "by_hand", "--quiet")
    assert result.exit_code == 0, result.output
    for name in ("pretraining/checkpoint.h5", "checkpoint.h5"):
        ours = checkpoint.load(tmp_path / "both" / name)["model_state"]
        theirs = checkpoint.load(tmp_path / ("pre" if "/" in name else "by_hand") /
                                 name.split("/")[-1])["model_state"]
        assert ours.keys() == theirs.keys()
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours), name


def test_a_two_stage_run_resumes_without_pretraining_again(fake_molecules, tmp_path):
    import shutil

    from tinymtl.train import checkpoint

    config = two_stage_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["training"]["keep_checkpoints"] = 2
    config = write(config, raw)
    out = tmp_path / "run"
    assert invoke("run", config, "--out", out, "--quiet").exit_code == 0
    whole = checkpoint.load(out / "checkpoint.h5")["model_state"]
    # interrupted in fine-tuning after step 3, the pretraining stage finished
    (kept,) = (out / "checkpoints").glob("*_step_000000003.h5")  # (single-task_step_...)
    shutil.copy(kept, out / "checkpoint.h5")
    stage = [(p, p.stat().st_mtime_ns) for p in (out / "pretraining").rglob("*")]
    result = invoke("run", config, "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert [(p, p.stat().st_mtime_ns) for p, _ in stage] == stage  # not run again
    resumed = checkpoint.load(out / "checkpoint.h5")["model_state"]
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)


def test_a_pretraining_stage_is_refused_in_one_line_when_it_cannot_be(fake_molecules, tmp_path):
    config = two_stage_config(tmp_path, backbone_from="x.h5")
    result = invoke("run", config, "--quiet")
    assert result.exit_code == 2 and "expected no model.backbone_from" in result.output
    assert len(result.output.strip().splitlines()) == 1
    write(tmp_path / "pre.yaml", {"tasks": {"a": {"generator": "arithmetic"}}})
    config = write(tmp_path / "tune2.yaml", dict(yaml.safe_load(
        (tmp_path / "tune.yaml").read_text()), model=dict(MODEL, pretrain="pre.yaml")))
    result = invoke("run", config, "--out", tmp_path / "r", "--quiet")
    assert result.exit_code == 2 and "not a pretraining config" in result.output
    assert not (tmp_path / "r").exists()
