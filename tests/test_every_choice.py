"""Every value the config schema accepts builds and trains: each choice of every enumerated key
(walked from the schema itself, methods from the registry, targets from the data sources) is set
on a small config of a fitting kind and run for a few steps. A value that no kind of config
accepts, or that is accepted and then crashes, fails the test (``model.encoder: attention``
once crashed at build time). The runs draw no plots (a third of their time): every example's
smoke run (``tests/test_smoke.py``) draws every kind of plot."""

import copy
import importlib.util

import numpy as np
import pytest

from tinymtl.mtl.continual import FISHER_KINDS
from tinymtl.options import ConfigError
from tinymtl.train import config as config_module

from mtl_helpers import tiny_config

SMALL = {"train_size": 60, "test_size": 20}


def enumerated_keys():
    """(key path, choices) of every enumerated key: ``*`` stands for every task or phase."""
    def walk(schema, prefix=""):
        for key, field in schema.items():
            name = prefix + key
            if isinstance(field, dict):
                yield from walk(field, name + ".")
            elif isinstance(getattr(field, "item", None), dict):
                yield from walk(field.item, name + ".*.")
            elif isinstance(field, config_module.Method):
                yield name, tuple(config_module.methods(field.kind_of_plugin))
            elif isinstance(field, (config_module.Choice, config_module.Baselines)):
                yield name, getattr(field, "choices", None) or field.CHOICES

    yield from walk(config_module.schema())
    yield "continual.method", tuple(config_module.methods("continual"))
    yield "continual.scenario", config_module.CONTINUAL_OWN["scenario"].choices
    yield "continual.fisher", FISHER_KINDS
    from tinymtl import datasets

    for name, source in datasets.SOURCES.items():
        if "target" in source.OPTIONS:
            yield f"tasks.*.target@{name}", source.OPTIONS["target"].choices


def bases():
    """Small configs of every kind a key may need: text tasks (alternating, mixed, in
    sequence), a three-task image set (joint, feature map), MNIST (split, for the class
    scenario)."""
    text = tiny_config(training={"steps": 3, "eval_every": 3, "log_every": 1,
                                 "warmup_steps": 0})
    text["tasks"] = {t: dict(s, **SMALL) for t, s in text["tasks"].items()}
    mixed = copy.deepcopy(text)
    mixed["training"]["schedule"] = "mixed"
    sequence = copy.deepcopy(text)
    sequence["continual"] = {"stages": ["kindergarten", "math"], "fisher_samples": 5}
    images = copy.deepcopy(text)
    images["tasks"] = {"A": {"generator": "shapes3", "target": "shape", **SMALL},
                       "B": {"generator": "shapes3", "target": "intensity", **SMALL}}
    images["model"] = {"encoder": "cnn", "channels": [4, 4], "features": 0, "padding": 1,
                       "head_hidden": 8}
    images["training"]["schedule"] = "joint"
    digits = copy.deepcopy(text)
    digits["tasks"] = {"a": {"generator": "mnist", "digits": [0, 1]},
                       "b": {"generator": "mnist", "digits": [2, 3]}}
    digits["model"] = {"encoder": "mlp", "hidden": [16]}
    digits["continual"] = {"stages": ["a", "b"], "fisher_samples": 5}
    pairs = copy.deepcopy(digits)
    pairs["tasks"] = {"L": {"generator": "multi_mnist", "target": "left", **SMALL},
                      "R": {"generator": "multi_mnist", "target": "right", **SMALL}}
    pairs["model"] = {"encoder": "cnn", "channels": [4], "features": 16}
    pairs.pop("continual")
    pairs["training"]["schedule"] = "joint"
    graphs = copy.deepcopy(text)
    graphs["tasks"] = {"M": {"generator": "motifs", "target": "motif", **SMALL},
                       "C": {"generator": "motifs", "target": "count", **SMALL}}
    graphs["model"] = {"encoder": "gat", "hidden": [8], "heads": 2}
    graphs["training"]["schedule"] = "joint"
    return {"text": text, "mixed": mixed, "sequence": sequence, "images": images,
            "digits": digits, "pairs": pairs, "graphs": graphs}


def own_data_bases(directory, text):
    """Configs of a user's own files (``datasets.files``), written into ``directory``: one per
    source, so that naming each generator trains (their ``kind`` values are each smoked in
    ``tests/test_own_data.py``)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    np.savez(directory / "data.npz", x_train=rng.normal(size=(60, 4)).astype(np.float32),
             y_train=np.arange(60) % 3, x_test=rng.normal(size=(20, 4)).astype(np.float32),
             y_test=np.arange(20) % 3)
    for split in ("train", "test"):
        (directory / f"{split}.tsv").write_text("".join(f"{k} plus 1\t{k % 2}\n"
                                                         for k in range(30)))
        for name in ("a", "b"):
            (directory / "img" / split / name).mkdir(parents=True)
            for k in range(6):
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                    directory / "img" / split / name / f"{k}.png")
    configs = {}
    for name, spec, model in [
            ("arrays", {"path": str(directory / "data.npz")}, {"encoder": "mlp", "hidden": [8]}),
            ("tsv", {"train": str(directory / "train.tsv"), "test": str(directory / "test.tsv")},
             text["model"]),
            ("image_folder", {"root": str(directory / "img"), "channels": 1},
             {"encoder": "cnn", "channels": [4], "features": 8})]:
        config = copy.deepcopy(text)
        config["tasks"] = {"t": dict(spec, generator=name)}
        config["model"] = model
        configs[name] = config
    return configs


def with_value(raw, key, value):
    """``raw`` with ``key`` (dotted; ``*``: every task or phase; ``@source``: only tasks of
    that source) set to ``value``, or None when the key does not apply to this config."""
    raw = copy.deepcopy(raw)
    key, _, source = key.partition("@")
    parts = key.split(".")
    if parts[0] == "continual" and "continual" not in raw:
        return None
    if parts[:2] == ["tasks", "*"]:
        specs = [s for s in raw["tasks"].values() if not source or s["generator"] == source]
        if not specs:
            return None
        for spec in specs:
            spec[parts[2]] = value
        return raw
    if parts[:3] == ["training", "phases", "*"]:
        raw["training"].update(schedule="curriculum", phases=[
            {"tasks": list(raw["tasks"]), "mode": value, "steps": 3}])
        return raw
    if (key, value) == ("training.schedule", "curriculum"):  # it comes with its phases
        raw["training"]["phases"] = [{"tasks": list(raw["tasks"]), "steps": 3}]
    target = raw
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return raw


@pytest.mark.slow
def test_every_accepted_value_builds_and_trains(tmp_path, data_dir, monkeypatch):
    from test_mnist import fetch_fake_mnist

    from tinymtl.report import plots
    from tinymtl.runs import run

    monkeypatch.setattr(plots, "task_curves", lambda *args, **kwargs: None)
    monkeypatch.setattr(plots, "confusion", lambda matrix, classes, title, path: str(path))
    (tmp_path / "idx").mkdir()
    fetch_fake_mnist(tmp_path / "idx", train=80, test=20, cycle_labels=True)
    (tmp_path / "own").mkdir()
    all_bases = bases()
    all_bases.update(own_data_bases(tmp_path / "own", all_bases["text"]))
    if importlib.util.find_spec("rdkit") is not None:  # the molecule sources need RDKit
        from test_molecules import fetch_fake_molecules

        fetch_fake_molecules(tmp_path / "molecules", monkeypatch)
        molecules = copy.deepcopy(all_bases["graphs"])
        molecules["tasks"] = {"S": {"generator": "molecules", "target": "solubility_class"},
                              "L": {"generator": "molecules", "target": "log_s"}}
        all_bases["molecules"] = molecules
        foods = copy.deepcopy(all_bases["graphs"])
        foods["tasks"] = {"F": {"generator": "food_graph", "target": "food_class", "foods": 30},
                          "N": {"generator": "food_graph", "target": "nutrients", "foods": 30}}
        all_bases["food_graph"] = foods
    unused, crashed = [], []
    for key, choices in enumerated_keys():
        for value in choices:
            if (key, value) == ("device", "cuda"):
                continue  # no GPU here (the CLI test covers the missing-CuPy error)
            ran = False
            for kind, base in all_bases.items():
                raw = with_value(base, key, value)
                if raw is None:
                    continue
                try:
                    config = config_module.validate(raw, kind)
                except ConfigError:
                    continue  # not a combination this kind of config accepts
                config["name"] = "choice"
                out = tmp_path / f"{kind}-{key}-{value}"
                try:
                    run(config, out, progress=False)
                except ValueError:
                    if out.exists():  # refused only after the run folder was written
                        raise
                    continue  # refused with one line once the data is known (e.g. class counts)
                except Exception as error:  # noqa: BLE001  (any crash of an accepted config)
                    crashed.append(f"{key} = {value!r} on {kind}: {type(error).__name__}: "
                                   f"{error}")
                ran = True
                break
            needs_rdkit = any(name in f"{key} {value}" for name in ("molecules", "food_graph"))
            if not ran and not (needs_rdkit and "molecules" not in all_bases):
                unused.append(f"{key} = {value!r}")  # (molecules, foods: only where RDKit is)
    assert not crashed, "\n".join(crashed)
    assert not unused, "accepted by no kind of config: " + ", ".join(unused)
