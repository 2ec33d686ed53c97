"""The fast documented figures reproduce (benchmarks/reproduce.py: the README's examples print
exactly what the README says they print); the slower ones are listed there with their
commands (``--slow``, ``--all``)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import reproduce  # noqa: E402


@pytest.mark.slow
def test_the_fast_figures_hold(tmp_path, data_dir):
    report = reproduce.check(reproduce.select("fast"), tmp_path)
    assert [e["name"] for e in report] == ["readme intro example output",
                                           "readme plugin example output"]
    for entry in report:
        assert entry["measured"] == entry["expected"], entry["name"]


def test_every_figure_names_a_document_and_a_way_to_measure_it():
    for figure in reproduce.FIGURES:
        assert (reproduce.ROOT / figure["doc"]).exists(), figure["name"]
        assert "snippet" in figure or ("command" in figure and "value" in figure)
        assert figure["speed"] in ("fast", "slow", "all")


def test_a_figure_path_is_dotted_keys_or_a_list_when_a_key_holds_a_dot():
    result = {"variants": {"si/si_c=10.0": {"test": [0.9314, 0.009]}}, "runs": [{"a": 1}]}
    assert reproduce.lookup(result, ["variants", "si/si_c=10.0", "test", 0]) == 0.9314
    assert reproduce.lookup(result, "runs.0.a") == 1
    with pytest.raises(KeyError):  # split at its dot, the variant is not found
        reproduce.lookup(result, "variants.si/si_c=10.0.test.0")
