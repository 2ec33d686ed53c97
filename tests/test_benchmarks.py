"""The CPU benchmark scripts run end to end (tiny sizes) and report the fields that
``docs/benchmarks.md`` cites. Their figures are measured by running them, never here."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))


def test_step_time_reports_each_rounds_ratio(capsys):
    pytest.importorskip("torch")
    import step_time

    step_time.main(["--models", "mlp", "--repeats", "3", "--rounds", "3", "--warmup", "0",
                    "--peak-size", "64", "--json"])
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["model"] == "mlp" and row["tinymtl_ms"] > 0 and row["torch_ms"] > 0
    assert len(row["block_ratios"]) == 3 and all(r > 0 for r in row["block_ratios"])


def test_median_ms_gives_each_functions_median_and_its_blocks():
    import step_time

    calls = []
    medians, blocks = step_time.median_ms([lambda: calls.append("a"), lambda: calls.append("b")],
                                          warmup=1, repeats=4, rounds=2)
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3  # turns: warmup, then 2 timed
    assert len(medians) == 2 and [len(b) for b in blocks] == [2, 2]
