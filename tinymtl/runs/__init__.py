"""Run protocols: what a config becomes. Each writes a run directory (``runs.setup``, shared by
all of them):

    multitask     every task of the config in one model, then its baselines
    continual     tasks in sequence, one stage each, with a method against forgetting
    baselines     each task alone (same steps or same tokens), and linear models
    seeds         one config under several seeds, transfer against seed noise
    compare       one base config under several strategies × seeds
    diagnostics   why is one task hard? (confusions, probes, label ambiguity)
    pretrain      a graph encoder pretrained without labels (GraphCL), for fine-tuning to load
"""

import os

from tinymtl.runs import continual, multitask, pretrain


def run(config, out_dir=None, resume=False, progress=True, callbacks=(), overrides=()):
    """Run a config end to end and return its summary (also written to summary.json).

    ``config``: the path of a YAML run config (``overrides``: ``section.key=value`` strings
    applied to it), or a config mapping (checked, defaults filled in). ``callbacks``: plugin
    instances (``tinymtl.Plugin``) added to the config's own. A config with
    ``continual.stages`` runs its tasks in sequence (``runs.continual``), a ``pretraining``
    config pretrains an encoder (``runs.pretrain``), any other runs its tasks together
    (``runs.multitask``)."""
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
    return protocol.run(config, out_dir, resume=resume, progress=progress, callbacks=callbacks)


__all__ = ["run"]
