"""Run protocols: what a config becomes. Each writes a run directory (``runs.setup``, shared by
all of them):

    multitask     every task of the config in one model, then its baselines
    continual     tasks in sequence, one stage each, with a method against forgetting
    baselines     each task alone (same steps or same tokens), and linear models
    seeds         one config under several seeds, transfer against seed noise
    compare       one base config under several strategies × seeds
    sweep         a grid of arms × seeds (arms: how many runs are run, serially or on Dask)
    diagnostics   why is one task hard? (confusions, probes, label ambiguity)
    pretrain      a graph encoder pretrained without labels (GraphCL), for fine-tuning to load
"""

import json
import os

import yaml

from tinymtl.files import write_text
from tinymtl.runs import continual, multitask, pretrain, setup


def run(config, out_dir=None, resume=False, progress=True, callbacks=(), overrides=()):
    """Run a config end to end and return its summary (also written to summary.json).

    ``config``: the path of a YAML run config (``overrides``: ``section.key=value`` strings
    applied to it), or a config mapping (checked, defaults filled in). ``callbacks``: plugin
    instances (``tinymtl.Plugin``) added to the config's own. A config with
    ``continual.stages`` runs its tasks in sequence (``runs.continual``), a ``pretraining``
    config pretrains an encoder (``runs.pretrain``), any other runs its tasks together
    (``runs.multitask``); one with ``model.pretrain`` runs that pretraining config first
    (``runs.pretrain.first_stage``) and fine-tunes from it."""
    from tinymtl.train import config as config_module

    if isinstance(config, (str, os.PathLike)):
        config = config_module.load(config, overrides=overrides)
    else:
        name = config.get("name") or "run"
        config = config_module.validate(config_module.apply_overrides(config, overrides))
        config["name"] = name
    if "pretraining" in config:
        if callbacks:
            raise ValueError("pretraining takes no callbacks; expected none")
        return pretrain.run(config, out_dir, resume=resume, progress=progress)
    protocol = continual if config["continual"]["stages"] else multitask
    if not config["model"]["pretrain"]:
        return protocol.run(config, out_dir, resume=resume, progress=progress,
                            callbacks=callbacks)
    # (what can be checked before pretraining is: a config refused for its memory, refused first)
    setup.check_memory_plan(config)
    run_dir = setup.run_folder(config, out_dir)  # pretraining first, into run_dir/pretraining
    stage_config = pretrain.stage_config(config)  # (a bad one is refused before any folder)
    run_dir.mkdir(parents=True, exist_ok=True)
    # the config as given, so that a run paused in its pretraining resumes with it (the
    # fine-tuning overwrites it with its own, the stage's checkpoint as backbone_from)
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    tuned, stage = pretrain.first_stage(config, run_dir, resume=resume, progress=progress,
                                        stage=stage_config)
    if tuned is None:  # interrupted in the pretraining: resumed with this run's own command
        return dict(stage, resume=f"tinymtl run {run_dir / 'config.yaml'} --out {run_dir} "
                                  f"--resume")
    summary = protocol.run(tuned, run_dir, resume=resume, progress=progress, callbacks=callbacks)
    summary["pretraining"] = {
        "config": config["model"]["pretrain"], "checkpoint": stage["checkpoint"]["path"],
        "steps": stage["steps"], "initial": stage["initial"], "final": stage["final"],
        "wall_seconds": stage["wall_seconds"], "peak_rss_mib": stage["peak_rss_mib"]}
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


__all__ = ["run"]
