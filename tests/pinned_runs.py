"""Pinned runs: short runs of every example and of every training method, reduced to digests of
their final weights, optimizer state and metrics rows, so that a refactoring of the training
layer can prove it changed nothing (``tests/test_pinned_runs.py`` compares against
``tests/pinned_runs.json``).

    python tests/pinned_runs.py --record        # re-record (only when behaviour *should* change);
                                                # also the ends of the format-1 resumes
    python tests/pinned_runs.py --record-new    # record only arms the recording lacks (a new
                                                # method), leaving every recorded one as it is
    python tests/pinned_runs.py                 # compare, printing every arm that differs
    python tests/pinned_runs.py --freeze-format1   # keep mid-run checkpoints of some arms

Every arm is an example config (or the flagship with one method switched on), shrunk to a few
steps on a few hundred examples; MNIST is replaced by the tests' fake MNIST. Digests are only
comparable on the same platform and package versions (floating-point rounding of BLAS and
Numba may differ elsewhere), so each recording carries those, the file keeps one recording per
environment (OpenBLAS's AVX2 and AVX-512 kernels, say), and the test skips where none matches.
``--record`` replaces only this environment's recording: after a change meant to alter
training, re-record every one listed (on an AVX-512 machine both kernel sets can be had:
``OPENBLAS_CORETYPE=Haswell python tests/pinned_runs.py --record``).
"""

import copy
import hashlib
import json
import os
import pathlib
import platform
import sys
import tempfile

import h5py
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
RECORD = HERE / "pinned_runs.json"

SMALL_TEXT = {"train_size": 300, "test_size": 60}
SMALL_TRAINING = {"steps": 10, "eval_every": 5, "log_every": 2, "checkpoint_every": 4,
                  "warmup_steps": 2}


def _example(name, steps=10, **sections):
    """An example config, shrunk (and with ``sections`` merged over it)."""
    import yaml

    raw = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    raw.setdefault("training", {}).update(SMALL_TRAINING, steps=steps)
    if raw["training"].get("epochs"):
        raw["training"].update(epochs=1, batch_size=16)
        raw["training"].pop("steps")
    for spec in raw["tasks"].values():
        if spec["generator"] in ("kindergarten", "math", "shapes3"):
            spec.update(SMALL_TEXT)
        elif spec["generator"] in ("multi_mnist", "motifs"):
            spec.update(train_size=64, test_size=32)
    model = raw.setdefault("model", {})
    model.pop("pretrain", None)  # (a pretraining stage: its determinism is tests/test_pretrain.py's)
    if model.get("hidden"):
        model["hidden"] = [32, 32]
    if model.get("encoder") == "conv":
        model.update(channels=[16, 16], features=32, embedding_dim=8)
    if model.get("encoder") == "cnn" and raw["tasks"][next(iter(raw["tasks"]))]["generator"] \
            == "shapes3":
        model.update(channels=[8, 8, 16], head_hidden=16)
    raw["linear_baseline"] = False
    if "continual" in raw:
        raw["continual"]["fisher_samples"] = 20
        raw["continual"]["replay_size"] = 50
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return raw


def _flagship(**training):
    return _example("kindergarten_math", baselines="none", training=training)


def _continual(method, **options):
    return _example("kindergarten_then_math", steps=8,
                    continual=dict(method=method, **options))


def arms():
    """{arm name: raw config}: every example, then every method on a small flagship."""
    result = {}
    import yaml

    for path in sorted(EXAMPLES.glob("*.yaml")):
        if {"compare", "sweep", "pretraining"} & set(yaml.safe_load(path.read_text())):
            continue  # comparisons and sweeps are runs of these configs with other settings;
            # pretraining has its own determinism tests (tests/test_pretrain.py)
        if "molecules" in path.read_text() and not environment()["rdkit"]:
            continue  # (without RDKit the environment differs: the test skips)
        result[f"example:{path.stem}"] = _example(path.stem)
    result["example:permuted_mnist"]["continual"]["stages"] = ["p0", "p1", "p2"]
    for weighting in ("static", "equal", "uncertainty", "dwa"):
        result[f"weighting:{weighting}"] = _flagship(schedule="mixed", weighting=weighting,
                                                     dwa_window=2)
    result["weighting:gradnorm"] = _flagship(schedule="mixed", weighting="gradnorm")
    result["weighting:rlw"] = _flagship(schedule="mixed", weighting="rlw")
    for method in ("pcgrad", "cagrad", "mgda", "mgda_ub"):
        result[f"gradients:{method}"] = _flagship(schedule="mixed", weighting="equal",
                                                  gradients=method)
    result["gradients:mgda3"] = _example("shapes3", training={"gradients": "mgda"})
    result["gradients:pcgrad+uncertainty"] = _flagship(schedule="mixed", weighting="uncertainty",
                                                       gradients="pcgrad")
    for sampling in ("uniform", "proportional", "temperature"):  # tasks of unequal sizes
        result[f"sampling:{sampling}"] = _example(
            "kindergarten_math", steps=30, baselines="none", training={"sampling": sampling},
            tasks={"kindergarten": {"generator": "kindergarten", **SMALL_TEXT},
                   "math": {"generator": "math", "train_size": 100, "test_size": 60}})
    result["training:accumulate"] = _flagship(accumulate=2, grad_clip=1.0)
    result["training:sgd_step"] = _flagship(optimizer="sgd", lr_schedule="step")
    result["training:curriculum"] = _flagship(schedule="curriculum", phases=[
        {"tasks": ["kindergarten"], "steps": 4},
        {"tasks": ["kindergarten", "math"], "mode": "mixed", "steps": 6}])
    result["baselines:token_controlled"] = _example("kindergarten_math",
                                                    baselines="token_controlled")
    for architecture in ("adapters", "mmoe"):
        result[f"architecture:{architecture}"] = _example(
            "kindergarten_math", baselines="none",
            model={"architecture": architecture, "adapter_hidden": 8, "experts": 2})
    result["tasks:lr+stop_gradient"] = _example(
        "kindergarten_math", baselines="none",
        tasks={"kindergarten": {"generator": "kindergarten", **SMALL_TEXT, "lr": 0.01},
               "math": {"generator": "math", **SMALL_TEXT, "stop_gradient": True,
                        "loss_weight": 0.5}})
    for method in ("finetune", "ewc", "online_ewc", "si", "replay", "lwf", "offline"):
        result[f"continual:{method}"] = _continual(method, ewc_lambda=1000.0)
    result["continual:online_ewc3"] = _example(  # three stages: online differs from EWC
        "permuted_mnist", steps=8, continual={"method": "online_ewc", "online_gamma": 0.5,
                                              "stages": ["p0", "p1", "p2"]})
    result["continual:ewc_true_fisher"] = _continual("ewc", fisher="true")
    for scenario in ("domain", "class"):
        result[f"continual:split_{scenario}"] = _example(
            "split_mnist", continual={"scenario": scenario, "method": "lwf",
                                      "stages": ["digits_01", "digits_23", "digits_45"]})
    return result


# -- digests --------------------------------------------------------------------------------------
def _digest(parts):
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
    return sha.hexdigest()[:16]


def run_digests(out):
    """(weights, optimizer, metrics) digests of the finished run in ``out``."""
    with h5py.File(out / "checkpoint.h5", "r") as f:
        weights = _digest(name.encode() + f["model"][name][...].tobytes()
                          for name in sorted(f["model"]))
        moments = []
        if "optimizer" in f:
            for index in sorted(f["optimizer"]["state"], key=int):
                group = f["optimizer"]["state"][index]
                moments += [f"{index}/{k}".encode() + group[k][...].tobytes()
                            for k in sorted(group)]
            moments.append(f["optimizer"].attrs["scalars"])
    rows = [json.dumps(json.loads(line), sort_keys=True)
            for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"weights": weights, "optimizer": _digest(moments), "metrics": _digest(rows),
            "rows": len(rows)}


def environment():
    import importlib.metadata

    import numba

    try:  # the molecule arms need RDKit (their features come from it)
        rdkit = importlib.metadata.version("rdkit")
    except importlib.metadata.PackageNotFoundError:
        rdkit = None
    from tinymtl.backend.blas import blas_kernels, blas_threads
    from tinymtl.backend.simd import numpy_simd

    return {"python": platform.python_version(), "machine": platform.machine(),
            "numpy": np.__version__, "numba": numba.__version__, "rdkit": rdkit,
            "blas": blas_kernels(),  # (OpenBLAS's AVX2 and AVX-512 kernels round differently,
            "blas_threads": blas_threads(),  # and so do products split over more threads)
            "numpy_simd": numpy_simd()}  # (AVX-512's SVML power, log1p, ... round differently)


def prepare_data(directory):
    """Point the datasets cache at ``directory`` and put the tests' fake MNIST (and, with
    RDKit, their stand-in molecules) in it."""
    import pytest

    sys.path.insert(0, str(HERE))
    from test_mnist import fetch_fake_mnist

    os.environ["TINYMTL_DATA_DIR"] = str(directory / "cache")
    (directory / "idx").mkdir(parents=True, exist_ok=True)
    fetch_fake_mnist(directory / "idx", train=120, test=40, cycle_labels=True)
    if environment()["rdkit"]:
        from test_molecules import fetch_fake_molecules

        with pytest.MonkeyPatch.context() as patch:
            fetch_fake_molecules(directory / "molecules", patch)


def run_arm(raw, out):
    from tinymtl.train import config as config_module
    from tinymtl.runs import run

    config = config_module.validate(copy.deepcopy(raw), "pinned")
    config["name"] = "pinned"
    run(config, out, progress=False)
    return run_digests(out)


def compute(selected=None, workdir=None):
    """{arm: digests} for every arm (or the ``selected`` names)."""
    workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="pinned-"))
    prepare_data(workdir)
    return {name: run_arm(raw, workdir / name.replace(":", "_"))
            for name, raw in arms().items() if selected is None or name in selected}


# -- format-1 checkpoints, frozen mid-run -------------------------------------------------------
FROZEN = HERE / "fixtures" / "format1"
FROZEN_ARMS = {  # arm: (trainer label, step) of the periodic checkpoint that is frozen
    "gradients:pcgrad+uncertainty": ("multitask", 4),
    "weighting:gradnorm": ("multitask", 4),
    "weighting:dwa": ("multitask", 8),
    "continual:ewc": ("stage1", 4),
    "continual:si": ("stage1", 4),
    "continual:replay": ("stage1", 4),
    "continual:lwf": ("stage1", 4),
}


def freeze_format1(workdir):
    """Run each ``FROZEN_ARMS`` arm and keep a copy of its checkpoint (and metrics rows) as it
    was at that label and step: checkpoints as this version writes them, for resume tests."""
    import shutil

    from tinymtl.runs import setup

    original = setup.save_checkpoint
    prepare_data(workdir)
    for name, (label, step) in FROZEN_ARMS.items():
        target = FROZEN / name.replace(":", "_")

        def save(path, trainer, *args, **kwargs):
            size = original(path, trainer, *args, **kwargs)
            if (trainer.label, trainer.step) == (label, step) and not target.exists():
                target.mkdir(parents=True)
                shutil.copy(path, target / "checkpoint.h5")
                shutil.copy(path.parent / "metrics.jsonl", target / "metrics.jsonl")
            return size

        setup.save_checkpoint = save
        try:
            run_arm(arms()[name], workdir / name.replace(":", "_"))
        finally:
            setup.save_checkpoint = original
        assert target.exists(), f"{name}: no checkpoint at {label} step {step}"


def resume_frozen(name, workdir):
    """Digests of arm ``name`` resumed from its frozen format-1 checkpoint (in ``workdir``,
    where ``prepare_data`` has put the data)."""
    import shutil

    from tinymtl.runs import run

    out = workdir / f"resumed_{name.replace(':', '_')}"
    shutil.copytree(FROZEN / name.replace(":", "_"), out)
    from tinymtl.train import config as config_module

    config = config_module.validate(copy.deepcopy(arms()[name]), "pinned")
    config["name"] = "pinned"
    run(config, out, resume=True, progress=False)
    return run_digests(out)


def recordings():
    """Every recording in ``RECORD``: [{environment, arms, resumed_format1}, ...]."""
    return json.loads(RECORD.read_text())["recordings"]


def recording_for(environment_now=None):
    """The recording made in this environment, or None."""
    environment_now = environment_now or environment()
    return next((r for r in recordings() if r["environment"] == environment_now), None)


def save_recording(recording):
    """Put ``recording`` in ``RECORD`` in place of the one of its environment (the others are
    kept), written to a temporary file and renamed."""
    kept = [r for r in recordings() if r["environment"] != recording["environment"]]
    ordered = sorted(kept + [recording], key=lambda r: json.dumps(r["environment"], sort_keys=True))
    from tinymtl.files import atomic_write

    with atomic_write(RECORD) as temporary:
        pathlib.Path(temporary).write_text(
            json.dumps({"recordings": ordered}, indent=1, sort_keys=True) + "\n")
    return len(kept)


def differences(recorded, measured):
    """Lines naming each arm whose digests differ from the recording (or are missing)."""
    lines = []
    for name in sorted(set(recorded) | set(measured)):
        if recorded.get(name) != measured.get(name):
            lines.append(f"{name}: recorded {recorded.get(name)}, now {measured.get(name)}")
    return lines


def main(argv):
    if "--freeze-format1" in argv:
        freeze_format1(pathlib.Path(tempfile.mkdtemp(prefix="pinned-")))
        print(f"froze {len(FROZEN_ARMS)} checkpoints in {FROZEN}")
        return 0
    recorded = recording_for()
    if "--record-new" in argv:
        if recorded is None:
            print(f"no recording for {environment()}: run --record first")
            return 1
        new = compute([name for name in arms() if name not in recorded["arms"]])
        recorded["arms"].update(new)
        save_recording(recorded)
        print(f"recorded {len(new)} new arms: {', '.join(new) or 'none'}")
        return 0
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pinned-"))
    measured = compute(workdir=workdir)
    if "--record" in argv:
        resumed = {name: resume_frozen(name, workdir) for name in FROZEN_ARMS}
        others = save_recording({"environment": environment(), "arms": measured,
                                 "resumed_format1": resumed})
        print(f"recorded {len(measured)} arms and {len(resumed)} format-1 resumes for "
              f"{environment()} in {RECORD}; {others} other environment(s) kept: if behaviour "
              f"changed, re-record them too")
        return 0
    if recorded is None:
        print(f"no recording for {environment()}; recorded for "
              f"{[r['environment'] for r in recordings()]}")
        return 1
    lines = differences(recorded["arms"], measured)
    print("\n".join(lines) or f"all {len(measured)} arms identical")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
