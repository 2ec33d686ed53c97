"""Config fuzzing: random mutations of every example config (wrong types, NaN and ±inf,
negative, zero and huge numbers, nested mappings, missing and unknown keys). Validation either
accepts the result or refuses it with one ConfigError line; any other exception is a bug.
``TINYMTL_FUZZ_EXAMPLES=N`` runs a longer soak."""

import copy
import math
import os
import pathlib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymtl.options import ConfigError
from tinymtl.train import config as config_module

EXAMPLES = sorted(p for p in (pathlib.Path(__file__).resolve().parent.parent / "examples")
                  .glob("*.yaml") if not {"compare", "sweep"} & set(yaml.safe_load(p.read_text())))
ODD_VALUES = [None, True, False, 0, -1, 10 ** 12, -(10 ** 12), 0.5, -0.5, math.nan, math.inf,
              -math.inf, "", "x" * 300, "1e-3", [], [1, "a"], {}, {"method": "nope"},
              {"a": {"b": {"c": 1}}}, ["tasks"], 2 ** 63]


def paths(raw, prefix=()):
    """Every key path of a nested mapping (and list items)."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield prefix + (key,)
            yield from paths(value, prefix + (key,))
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield prefix + (index,)
            yield from paths(value, prefix + (index,))


def mutate(raw, path, action, value):
    raw = copy.deepcopy(raw)
    *parents, last = path
    target = raw
    for part in parents:
        target = target[part]
    if action == "set":
        target[last] = value
    elif action == "delete" and isinstance(target, dict):
        del target[last]
    elif action == "unknown" and isinstance(target, dict):
        target[f"{last}_unknown"] = value
    elif action == "nest":
        target[last] = {"nested": target[last]}
    return raw


@st.composite
def mutations(draw):
    example = draw(st.sampled_from(EXAMPLES))
    raw = yaml.safe_load(example.read_text())
    all_paths = list(paths(raw))
    count = draw(st.integers(1, 3))
    for _ in range(count):
        path = draw(st.sampled_from(all_paths))
        action = draw(st.sampled_from(["set", "set", "delete", "unknown", "nest"]))
        raw = mutate(raw, path, action, draw(st.sampled_from(ODD_VALUES)))
        all_paths = list(paths(raw)) or [("name",)]
    return example, raw


@settings(max_examples=int(os.environ.get("TINYMTL_FUZZ_EXAMPLES", 300)), deadline=None)
@given(mutations())
def test_a_mutated_example_is_accepted_or_refused_in_one_line(case):
    example, raw = case
    try:
        config_module.load(example, raw)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(str(example)), message
        assert len(message) < 600, message


@settings(max_examples=int(os.environ.get("TINYMTL_FUZZ_EXAMPLES", 300)) // 10,
          deadline=None)
@given(mutations())
def test_the_command_line_checks_a_mutated_example_in_one_line_and_writes_nothing(case):
    """Through the CLI: `tinymtl check` exits 0 or 2 with exactly one line; a refused config
    given to `tinymtl run` exits 2 with the same one line; neither leaves a file behind."""
    import tempfile

    from click.testing import CliRunner

    from tinymtl.cli import main

    example, raw = case
    with tempfile.TemporaryDirectory() as directory:
        directory = pathlib.Path(directory)
        path = directory / example.name
        path.write_text(yaml.safe_dump(raw))
        runner = CliRunner()
        env = {"TINYMTL_DATA_DIR": str(directory / "data")}
        result = runner.invoke(main, ["check", str(path)], env=env)
        lines = result.output.strip().splitlines()
        assert result.exit_code in (0, 2) and len(lines) == 1, result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
        if result.exit_code == 2:
            assert lines[0].startswith(f"error: {path}"), lines[0]
            again = runner.invoke(main, ["run", str(path), "--out", str(directory / "run")],
                                  env=env)
            assert again.exit_code == 2 and again.output.strip() == lines[0], again.output
        assert sorted(p.name for p in directory.iterdir()) == [example.name]
