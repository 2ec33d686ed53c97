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
                  .glob("*.yaml") if "compare" not in yaml.safe_load(p.read_text()))
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
