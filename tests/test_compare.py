"""Strategy comparisons: Δm% (LibMTL's definition), config merging, and a tiny comparison."""

import json

import numpy as np
import pytest
import yaml

from tinymtl.runs.compare import delta_m, merge
from tinymtl.train.config import ConfigError

from mtl_helpers import tiny_config, write_config


def test_delta_m_by_hand():
    # accuracy 0.9 vs 0.8 (+12.5 %) and MAE 0.3 vs 0.2 (lower is better: −50 %): mean −18.75 %
    assert delta_m({"a": 0.9, "c": 0.3}, {"a": 0.8, "c": 0.2},
                   {"a": "classification", "c": "regression"}) == pytest.approx(-18.75)
    assert delta_m({"a": 0.8}, {"a": 0.8}, {"a": "classification"}) == 0.0


def test_merge_overrides_nested_keys_only():
    base = {"training": {"steps": 10, "lr": 0.1}, "seed": 0}
    merged = merge(base, {"training": {"lr": 0.2}})
    assert merged == {"training": {"steps": 10, "lr": 0.2}, "seed": 0}
    assert base["training"]["lr"] == 0.1


def comparison_file(tmp_path, **compare):
    write_config(tmp_path / "base.yaml", tiny_config(training={
        "steps": 30, "eval_every": 15, "log_every": 5}))
    spec = {"base": "base.yaml", "seeds": 2, "common": {"training": {"schedule": "mixed"}},
            "strategies": {"equal": {"training": {"weighting": "equal"}},
                           "pcgrad": {"training": {"gradients": "pcgrad"}}}}
    spec.update(compare)
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump({"name": "cmp", "compare": spec}))
    return path


def test_a_tiny_comparison_writes_its_table(tmp_path, data_dir):
    from click.testing import CliRunner

    from tinymtl.cli import main

    path = comparison_file(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| pcgrad |" in result.output and "| single task (reference) |" in result.output
    for name in ("comparison.json", "comparison.md", "comparison.png",
                 "pcgrad/seed_4/summary.json", "equal/seed_3/metrics.jsonl"):
        assert (out / name).exists(), name
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["seeds"] == [3, 4]
    pcgrad = summary["strategies"]["pcgrad"]
    assert pcgrad["config"]["gradients"] == {"method": "pcgrad"} and pcgrad["config"]["schedule"] == "mixed"
    assert pcgrad["train_step_ms"][0] > 0
    run = json.loads((out / "pcgrad" / "seed_3" / "summary.json").read_text())
    assert summary["strategies"]["pcgrad"]["tasks"]["math"][0] == pytest.approx(
        (run["tasks"]["math"]["test_accuracy"]
         + json.loads((out / "pcgrad" / "seed_4" / "summary.json").read_text())
         ["tasks"]["math"]["test_accuracy"]) / 2)
    for task in ("kindergarten", "math"):  # each reference consumed its task's tokens
        for mt, single in zip(pcgrad["tokens"][task], summary["reference_tokens"][task]):
            assert mt - 20 < single <= mt
    # the choice is made on validation: the best validation Δm%, whatever test says
    on_valid = {n: e["valid_delta_m"][0] for n, e in summary["strategies"].items()}
    assert summary["chosen_on_valid"] == max(on_valid, key=on_valid.get)
    assert f"**{summary['chosen_on_valid']}**" in result.output


@pytest.mark.parametrize("change,message", [
    ({"seeds": 0}, "compare.seeds = 0: expected an integer >= 1"),
    ({"base": "missing.yaml"}, "compare.base = 'missing.yaml': no such file"),
    ({"strategies": {"bad": {"training": {"weighting": "nope"}}}},
     "compare.strategies.bad .*training.weighting = 'nope'"),
    ({"extra": 1}, "unknown key 'compare.extra'"),
])
def test_bad_comparison_files_are_one_line_errors(change, message, tmp_path):
    from tinymtl.runs import compare
    from tinymtl.train.config import read_yaml

    path = comparison_file(tmp_path, **change)
    with pytest.raises(ConfigError, match=message):
        compare.load(path, read_yaml(path))


def test_a_continual_comparison_reports_the_matrix_summaries(tmp_path, data_dir):
    from tinymtl.runs import compare
    from tinymtl.train.config import read_yaml

    write_config(tmp_path / "base.yaml", tiny_config(
        training={"steps": 10, "eval_every": 10, "log_every": 5},
        continual={"stages": ["kindergarten", "math"], "fisher_samples": 10}))
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump({"compare": {
        "base": "base.yaml", "seeds": 2,
        "strategies": {"finetune": {"continual": {"method": "finetune"}},
                       "ewc": {"continual": {"method": "ewc"}}}}}))
    result = compare.run_comparison(compare.load(path, read_yaml(path)), tmp_path / "out",
                                    progress=False)
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert "| ewc | ewc | task |" in table and (tmp_path / "out" / "comparison.png").exists()
    runs = [json.loads((tmp_path / "out" / "ewc" / f"seed_{s}" / "summary.json").read_text())
            for s in (3, 4)]
    accs = [r["continual"]["average_accuracy"] for r in runs]
    assert result["strategies"]["ewc"]["average_accuracy"][0] == pytest.approx(np.mean(accs))
    valid = {n: e["valid_average_accuracy"][0] for n, e in result["strategies"].items()}
    assert result["chosen_on_valid"] == max(valid, key=valid.get)


def test_an_interrupted_comparison_reuses_finished_runs(tmp_path, data_dir, monkeypatch):
    import tinymtl.runs
    from tinymtl.runs import compare
    from tinymtl.train.config import read_yaml

    path = comparison_file(tmp_path, seeds=1)
    comparison = compare.load(path, read_yaml(path))
    first = compare.run_comparison(comparison, tmp_path / "out", progress=False)
    monkeypatch.setattr(tinymtl.runs, "run", lambda *a, **k: pytest.fail("ran again"))
    again = compare.run_comparison(comparison, tmp_path / "out", progress=False)
    assert again["strategies"] == first["strategies"]
