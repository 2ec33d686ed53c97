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
                    "--warmup-seconds", "0", "--peak-size", "64", "--json"])
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


def test_batch_halves_reproduces_the_full_batch_gradient_and_keeps_the_copies_equal(capsys):
    # The design it measures must compute the same step: the two halves' averaged gradient is
    # the whole batch's (to float32 rounding: the sums are split in another order), and after
    # a step both copies of the model hold the same weights.
    pytest.importorskip("threadpoolctl")
    import batch_halves

    batch_halves.main(["--repeats", "2", "--rounds", "1", "--warmup", "0", "--json"])
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["full_batch_ms"] > 0 and row["halves_ms"] > 0
    assert 0 < row["max_grad_difference"] < 1e-5

    from threadpoolctl import ThreadpoolController

    halves = batch_halves.HalvesStep(ThreadpoolController().select(user_api="blas")
                                     .lib_controllers[0])
    before = [p.data.copy() for p in halves.params[0]]
    halves()
    for first, second, old in zip(*halves.params, before):
        assert (first.data == second.data).all()
    assert any((first.data != old).any() for first, old in zip(halves.params[0], before))


def test_median_ms_warms_each_block_up_for_at_least_warmup_seconds():
    import time

    import step_time

    calls = []

    def slow():
        calls.append(time.perf_counter())
        time.sleep(0.01)

    step_time.median_ms([slow], warmup=1, repeats=2, rounds=2, warmup_seconds=0.05)
    # each block: untimed calls until 0.05 s have passed (at least 5 of 10 ms), then 1 timed
    assert len(calls) >= 2 * (5 + 1)
