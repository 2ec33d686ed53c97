"""Run configs: YAML (a safe loader only, YAML 1.2 numbers) checked against a schema, with defaults
filled in.

Every problem is reported as one line that names the file, the key, the value and what is
allowed, e.g.  ``examples/x.yaml: training.lr = -1: expected a number > 0``.

Methods (``mtl.plugin``'s registry) are named with their options nested,

    training:
      weighting: {method: gradnorm, alpha: 1.5}     # or just: weighting: gradnorm
      gradients: {method: cagrad, c: 0.4}
    continual: {stages: [a, b], method: ewc, lambd: 100}   # the section holds the options

and each method's schema checks its options. The flat keys of earlier versions
(``training.gradnorm_alpha``, ``continual.ewc_lambda``, ...) are still read, as aliases. The
resolved config always has the nested form, with only the chosen method's options.
"""

import copy
import json
import pathlib
import re

import yaml

from tinymtl.options import (Bool, Choice, ConfigError, Duration, Field, Float, Int, ListOf,
                             MapOf, Str, check_section)

from tinymtl import datasets
from tinymtl.graph.augment import AUGMENTATIONS
from tinymtl.mtl import continual, surgery, weighting  # noqa: F401  (register their methods)
from tinymtl.mtl.architectures import ARCHITECTURES
from tinymtl.mtl.heads import HEADS
from tinymtl.mtl.plugin import aliases, methods, resolve
from tinymtl.mtl.sampling import METHODS as SAMPLING_METHODS
from tinymtl.train import callbacks, tensorboard  # noqa: F401  (register the built-in callbacks)
from tinymtl.train.nonfinite import NonFinitePolicy
from tinymtl.mtl.schedules import MODES, SCHEDULES


class Baselines(Field):
    """``baselines``: none | single_task | token_controlled (true means single_task)."""

    CHOICES = ("none", "single_task", "token_controlled")

    def check(self, value, where):
        if isinstance(value, bool):
            return "single_task" if value else "none"
        if value not in self.CHOICES:
            raise ConfigError(f"{where} = {value!r}: expected one of {', '.join(self.CHOICES)}, "
                              f"true or false")
        return value



class Method(Field):
    """A method of a plugin kind: its name, or {method: name, **options} (resolved later,
    with the flat aliases beside it: ``resolve_methods``)."""

    def __init__(self, kind, default):
        super().__init__(default)
        self.kind_of_plugin = kind

    def check(self, value, where):
        return value

    def kind(self):
        return f"one of {', '.join(methods(self.kind_of_plugin))}, or {{method: name, options}}"


class MethodList(Field):
    """A list of plugins of one kind, each a name or {method: name, **options}: ``callbacks``."""

    def __init__(self, kind):
        super().__init__(default=[])
        self.kind_of_plugin = kind

    def check(self, value, where):
        if not isinstance(value, list):
            known = ", ".join(methods(self.kind_of_plugin)) or "none registered"
            raise ConfigError(f"{where} = {value!r}: expected a list of plugin names or "
                              f"{{method: name, options}} (known: {known})")
        return [resolve(self.kind_of_plugin, item, f"{where}[{k}]")
                for k, item in enumerate(value)]

    def kind(self):
        return "a list of plugins"


CONTINUAL_OWN = {  # the continual section's own keys; the rest are its method and options
    "stages": ListOf(Str(), default=None),  # task names, in training order
    "scenario": Choice(("task", "domain", "class"), default="task"),
    "reset_optimizer": Bool(default=True, help="a fresh optimizer state (Adam's moments) "
                            "every stage (Avalanche's habit); false carries it over, as one "
                            "optimizer kept for the whole sequence would (van de Ven & Tolias)"),
}


class ContinualSection(Field):
    """``continual``: stages, scenario, then ``method`` and that method's options (or the flat
    aliases of any continual method, as earlier versions took them)."""

    def __init__(self):
        super().__init__({**{key: field.default for key, field in CONTINUAL_OWN.items()},
                          "method": "finetune"})

    def check(self, value, where):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        name = value.get("method", "finetune")
        chosen = methods("continual").get(name) if isinstance(name, str) else None
        own_options = set(chosen.OPTIONS) if chosen else set()
        flat = set(aliases("continual"))
        for key in value:
            if key not in CONTINUAL_OWN and key != "method" and key not in own_options | flat:
                raise ConfigError(f"unknown key '{where}.{key}'; allowed here: "
                                  f"{', '.join(CONTINUAL_OWN)}, method and its options "
                                  f"({', '.join(own_options) or 'none'})")
        result = check_section(CONTINUAL_OWN, {k: v for k, v in value.items()
                                               if k in CONTINUAL_OWN}, where)
        result.update(resolve(
            "continual", {"method": value.get("method", "finetune"),
                          **{k: v for k, v in value.items() if k in own_options}}, where,
            flat={k: v for k, v in value.items() if k in flat and k not in own_options},
            flat_where=where))
        return result


def method_spec(config, kind):
    """The resolved ``{method, **options}`` of a config's weighting, gradients or continual
    method (what ``mtl.plugin.create`` builds)."""
    if kind == "continual":
        return {k: v for k, v in config["continual"].items() if k not in CONTINUAL_OWN}
    return dict(config["training"][kind])


def resolve_methods(training):
    """Replace ``training``'s weighting and gradients by their resolved specs, taking in (and
    removing) the flat alias keys beside them."""
    for kind in ("weighting", "gradients"):
        flat = {key: training.pop(key) for key in aliases(kind) if key in training}
        training[kind] = resolve(kind, training[kind], f"training.{kind}", flat, "training")


# -- the run schema -------------------------------------------------------------------------------
# Bounds on sizes: far above what anyone trains here, low enough that shapes and the memory
# estimate (``runs.memory``, which refuses what does not fit) never overflow.
MAX_WIDTH = 1 << 20      # a layer's width: hidden units, channels, features, embeddings
MAX_EXAMPLES = 10 ** 8   # a split of a task's data
MAX_BATCH = 1 << 20
MAX_STEPS = 10 ** 9
PHASE = {
    "tasks": ListOf(Str(), required=True),
    "mode": Choice(MODES, default="alternating"),
    "steps": Int(low=1, high=MAX_STEPS, required=True),
}

TASK = {  # what every task takes; each data source adds its own options (datasets.SOURCES)
    "generator": Choice(datasets.SOURCES, required=True),
    # defaults: 20000 and 2000 for generated text, all of it for real data
    "train_size": Int(low=10, high=MAX_EXAMPLES),
    "test_size": Int(low=10, high=MAX_EXAMPLES),
    "valid_size": Int(low=0, high=MAX_EXAMPLES),  # carved from train (data.valid_fraction)
    "head": Choice(HEADS),      # default: linear on a feature vector, gap on a feature map
    "loss_weight": Float(default=1.0, low=0.0),
    "lr": Float(positive=True),  # this task's head's own rate (default: training.lr)
    "stop_gradient": Bool(default=False),  # the head learns; the backbone gets no gradient
}


class SourceOption(Field):
    """A task option that only some data sources take; its source checks it (``_check_tasks``)."""

    def check(self, value, where):
        return value


def source_options():
    """{option: the sources that take it}, over every data source."""
    options = {}
    for name, source in datasets.SOURCES.items():
        for key in source.OPTIONS:
            options.setdefault(key, []).append(name)
    return options


TRAINING = {
    "schedule": Choice(SCHEDULES, default="alternating"),
    "steps": Int(default=4000, low=1, high=MAX_STEPS),
    "epochs": Int(low=1, high=10 ** 6),  # instead of steps: passes over the (one) task's data
    "accumulate": Int(default=1, low=1, high=1 << 16),  # micro-batches summed into each update
    "phases": ListOf(PHASE, default=None),
    "sampling": Choice(SAMPLING_METHODS, default="round_robin"),  # alternating phases
    "sampling_temperature": Float(default=2.0, positive=True),
    "weighting": Method("weighting", default="static"),  # how task losses combine
    "gradients": Method("gradients", default="sum"),  # gradient surgery on shared params
    "batch_size": Int(default=64, low=1, high=MAX_BATCH),
    "optimizer": Choice(("adam", "adamw", "sgd"), default="adam"),
    "lr": Float(default=3e-3, positive=True),
    "momentum": Float(default=0.9, low=0.0, high=1.0),
    "weight_decay": Float(default=0.0, low=0.0),
    "lr_schedule": Choice(("constant", "cosine", "step"), default="cosine"),
    "warmup_steps": Int(default=0, low=0, high=MAX_STEPS),
    "grad_clip": Float(default=0.0, low=0.0),
    # what a NaN/inf loss or gradient does: NonFinitePolicy's options (train/nonfinite.py)
    "on_nonfinite": NonFinitePolicy.OPTIONS["policy"],
    "max_skips": NonFinitePolicy.OPTIONS["max_skips"],
    "check_every": NonFinitePolicy.OPTIONS["check_every"],
    "eval_every": Int(default=250, low=1, high=MAX_STEPS),
    # evaluations during training on a fixed, seeded subsample of this many validation
    # examples per task (0: all); the last one of a run is always on all of them
    "eval_size": Int(default=0, low=0, high=MAX_EXAMPLES),
    "log_every": Int(default=50, low=1, high=MAX_STEPS),
    # periodic checkpoints on by default, so that any run can resume (0: only at the end)
    "checkpoint_every": Int(default=500, low=0, high=MAX_STEPS),
    "keep_checkpoints": Int(default=1, low=1, high=1000),  # checkpoints/step_<N>.h5: last K
    "max_time": Duration(),  # e.g. 45m: pause (checkpointed, resumable) when it is used up
}


def schema():
    """The run schema, built when a config is checked: methods registered by then (also a
    user's) are known, with their flat aliases."""
    training = dict(TRAINING)
    for kind in ("weighting", "gradients"):
        training.update({key: copy.copy(field) for key, field in aliases(kind).items()})
        for key in aliases(kind):
            training[key].default = None
    task = dict(TASK, **{key: SourceOption() for key in source_options()})
    return dict(SCHEMA, tasks=MapOf(task, required=True), training=training,
                continual=ContinualSection())


SCHEMA = {
    "name": Str(),
    "seed": Int(default=0, low=0),
    "device": Choice(("cpu", "cuda"), default="cpu"),
    "data": {
        "seed": Int(default=0, low=0),
        "max_length": Int(default=20, low=4, high=256),
        # each task's validation split: this share of its training examples (0: none), unless
        # the task sets valid_size; every choice a run makes looks at it, never at test
        "valid_fraction": Float(default=0.1, low=0.0, high=0.5),
        "cache": Bool(default=True),
        # where generated and fetched data are kept (default: $TINYMTL_DATA_DIR, else the
        # clone's datasets/cache, else the user's cache dir: datasets.cache.cache_dir)
        "cache_dir": Str(),
    },
    "tasks": None,  # TASK and every data source's options (``schema``)
    "model": {
        "architecture": Choice(ARCHITECTURES, default="hard"),  # what is shared: mtl.architectures
        "adapter_hidden": Int(default=64, low=1, high=MAX_WIDTH),  # adapters' bottleneck
        "experts": Int(default=4, low=2, high=64),        # mmoe: how many expert backbones
        "encoder": Choice(("conv", "attention", "cnn", "mlp", "gat"), default="conv"),
        "hidden": ListOf(Int(low=1, high=MAX_WIDTH), default=[400, 400]),  # mlp, gat: widths
        "heads": Int(default=4, low=1, high=64),  # gat encoder: attention heads per layer
        "graph_pooling": Choice(("sum", "mean", "max", "attention"), default="mean"),  # gat
        "edge_features": Bool(default=False),  # gat: edge features (bonds) in the attention
        "relations": Bool(default=False),  # gat: attention of its own per edge type (RGAT)
        "embedding_dim": Int(default=32, low=1, high=MAX_WIDTH),
        "channels": ListOf(Int(low=1, high=MAX_WIDTH), default=[64, 64]),
        "kernel_size": Int(default=3, low=1, high=64),
        "pooling": Choice(("flatten", "max", "flatten+max"), default="flatten"),  # conv encoder
        "padding": Int(default=0, low=0, high=64),     # cnn encoder: zero padding of each conv
        "batch_norm": Bool(default=False),     # cnn encoder: BatchNorm2d after each conv
        "features": Int(default=256, low=0, high=MAX_WIDTH),  # cnn: 0: heads read the map
        "freeze_backbone": Bool(default=False),  # train the heads only
        "backbone_from": Str(),                # checkpoint whose backbone weights to start from
        # a pretraining config run first, as this run's first stage (runs.pretrain.first_stage):
        # its encoder is then loaded as backbone_from's is
        "pretrain": Str(),
        "head_hidden": Int(default=0, low=0, high=MAX_WIDTH),
        "dropout": Float(default=0.0, low=0.0, high=0.99),
    },
    "training": None,   # TRAINING, with the methods' flat aliases (``schema``)
    "continual": None,  # train.continual: tasks in sequence (``ContinualSection``)
    "callbacks": MethodList("callback"),  # more plugins: e.g. a user's, registered on import
    # after a run on molecules: which atoms a task's answers rest on (runs.salience)
    "salience": {"task": Str(), "draw": Int(default=6, low=0, high=50)},
    "baselines": Baselines(default="single_task"),  # train.baselines: what transfer is against
    "linear_baseline": Bool(default=True),
    "linear_baseline_steps": Int(default=1000, low=1, high=MAX_STEPS),  # its Adam steps of 256
}


# A pretraining config (``tinymtl pretrain``, ``runs.pretrain``): GraphCL on the unlabelled
# molecules, the same ``model`` section a fine-tuning config has (so its backbone loads there).
PRETRAINING = {
    "steps": Int(default=2000, low=1, high=MAX_STEPS),
    "batch_size": Int(default=128, low=2, high=MAX_BATCH),  # NT-Xent needs two graphs at least
    "optimizer": TRAINING["optimizer"],
    "lr": Float(default=1e-3, positive=True),
    "momentum": TRAINING["momentum"],
    "weight_decay": TRAINING["weight_decay"],
    "lr_schedule": Choice(("constant", "cosine", "step"), default="constant"),
    "warmup_steps": TRAINING["warmup_steps"],
    "temperature": Float(default=0.2, positive=True),  # τ of NT-Xent (GraphCL's code: 0.2)
    # each view applies one of these, drawn per batch (GraphCL's "random" augmentation pool)
    "augmentations": ListOf(Choice(AUGMENTATIONS),
                            default=["drop_nodes", "perturb_edges", "mask_attributes",
                                     "subgraph"]),
    "aug_ratio": Float(default=0.2, low=0.0, high=0.9),
    "projection_dim": Int(default=0, low=0, high=MAX_WIDTH),  # 0: the encoder's width
    "eval_every": Int(default=250, low=1, high=MAX_STEPS),
    "log_every": Int(default=50, low=1, high=MAX_STEPS),
    "checkpoint_every": Int(default=500, low=0, high=MAX_STEPS),
    "keep_checkpoints": Int(default=1, low=1, high=1000),
}


def pretraining_schema():
    return {
        "name": SCHEMA["name"], "seed": SCHEMA["seed"], "device": SCHEMA["device"],
        "data": {
            # the unlabelled pool: molecules, or each food's own graph of a food graph
            "source": Choice(("molecules", "food_graph"), default="molecules"),
            "foods": Int(default=600, low=10, high=10 ** 6),  # food_graph: as its tasks'
            "cross_marker": Float(default=0.1, low=0.0, high=1.0),  # food_graph
            "csv": Str(),  # food_graph: a folder of the user's CSV files (its tasks' csv)
            "compound_features": Str(default="fingerprint"),  # food_graph: as its tasks' ones
            "seed": Int(default=0, low=0),
            "pool_size": Int(default=0, low=0, high=MAX_EXAMPLES),  # 0: the whole pool
            # held out of the pool: the contrastive loss and accuracy on graphs never trained on
            "valid_fraction": Float(default=0.05, low=0.0, high=0.5),
        },
        "model": SCHEMA["model"],
        "pretraining": PRETRAINING,
    }


def is_pretraining(raw):
    """Whether a config's mapping (raw or checked) is a pretraining config (a ``pretraining``
    section, no tasks)."""
    return isinstance(raw, dict) and "pretraining" in raw and "tasks" not in raw


def validate_pretraining(raw, source="config"):
    """A pretraining config, checked, defaults filled in; ConfigError (one line) otherwise."""
    try:
        config = check_section(pretraining_schema(), raw, "")
        if config["model"]["encoder"] != "gat":
            raise ConfigError(f"model.encoder = {config['model']['encoder']!r}: GraphCL "
                              f"pretrains a graph encoder; expected 'gat'")
        for key in ("architecture", "freeze_backbone", "backbone_from", "pretrain"):
            if config["model"][key] != SCHEMA["model"][key].default:
                raise ConfigError(f"model.{key}: pretraining trains one encoder from scratch; "
                                  f"expected no {key} (set it in the fine-tuning config)")
        training = config["pretraining"]
        if training["warmup_steps"] >= training["steps"]:
            raise ConfigError(f"pretraining.warmup_steps = {training['warmup_steps']}: "
                              f"expected fewer than pretraining.steps ({training['steps']})")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


def validate(raw, source="config"):
    """The checked config with defaults filled in; ConfigError (one line) otherwise (a
    pretraining config is checked against its own schema, ``validate_pretraining``)."""
    if is_pretraining(raw):
        return validate_pretraining(raw, source)
    try:
        config = check_section(schema(), raw, "")
        tasks = list(config["tasks"])
        training = config["training"]
        resolve_methods(training)
        if training["schedule"] == "curriculum":
            if not training["phases"]:
                raise ConfigError("training.phases: the curriculum schedule needs a list of "
                                  "phases (tasks, mode, steps)")
            for k, phase in enumerate(training["phases"]):
                for task in phase["tasks"]:
                    if task not in tasks:
                        raise ConfigError(f"training.phases[{k}].tasks: unknown task {task!r}; "
                                          f"the config defines {', '.join(tasks)}")
            training["steps"] = sum(p["steps"] for p in training["phases"])
        elif training["phases"]:
            raise ConfigError(f"training.phases: only the curriculum schedule takes phases "
                              f"(schedule is {training['schedule']!r})")
        if training["schedule"] == "sequential" and training["steps"] < len(tasks):
            raise ConfigError(f"training.steps = {training['steps']}: the sequential schedule "
                              f"needs at least one step per task")
        stages = config["continual"]["stages"]
        if stages:
            _check_continual(config, tasks)
        if training["epochs"] and len(tasks) != 1 and not stages:
            raise ConfigError(f"training.epochs = {training['epochs']}: epochs are defined for "
                              f"a single task; give training.steps for {len(tasks)} tasks")
        if training["warmup_steps"] >= training["steps"] and not training["epochs"]:
            raise ConfigError(f"training.warmup_steps = {training['warmup_steps']}: expected "
                              f"fewer than training.steps ({training['steps']})")
        _check_tasks(config)
        modes = [p["mode"] for p in training["phases"]] if training["phases"] else \
            [training["schedule"]]
        for kind in ("weighting", "gradients"):
            name = training[kind]["method"]
            method = methods(kind)[name]
            if method.needs_all_tasks and (len(tasks) < 2 or any(
                    mode not in ("joint", "mixed") for mode in modes)):
                raise ConfigError(f"training.{kind} = {name!r}: it needs every task in each "
                                  f"step; expected a joint or mixed schedule of at least two "
                                  f"tasks")
            if not method.accumulates and training["accumulate"] > 1:
                raise ConfigError(f"training.{kind} = {name!r}: expected training.accumulate "
                                  f"= 1")
        _check_callbacks(config)
        if config["model"]["pretrain"] and config["model"]["backbone_from"]:
            raise ConfigError("model.pretrain: the backbone comes from its pretraining; "
                              "expected no model.backbone_from with it")
        if config["salience"]["task"] is not None and config["salience"]["task"] not in tasks:
            raise ConfigError(f"salience.task: unknown task {config['salience']['task']!r}; "
                              f"the config defines {', '.join(tasks)}")
        if config["model"]["encoder"] == "conv" and config["model"]["kernel_size"] % 2 == 0:
            raise ConfigError(f"model.kernel_size = {config['model']['kernel_size']}: expected "
                              f"an odd size (the conv encoder keeps the sequence length)")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


def _check_continual(config, tasks):
    """A continual sequence: known tasks, each once, trained alone (per stage)."""
    continual, training = config["continual"], config["training"]
    for k, task in enumerate(continual["stages"]):
        if task not in tasks:
            raise ConfigError(f"continual.stages[{k}] = {task!r}: unknown task; the config "
                              f"defines {', '.join(tasks)}")
    if len(set(continual["stages"])) != len(continual["stages"]):
        raise ConfigError(f"continual.stages = {continual['stages']!r}: expected each task once")
    if training["weighting"]["method"] != "static" or training["gradients"]["method"] != "sum":
        raise ConfigError("continual: each stage trains one task; expected training.weighting "
                          "= 'static' and training.gradients = 'sum'")
    if continual["scenario"] == "class" and any(
            config["tasks"][t]["digits"] is None for t in continual["stages"]):
        raise ConfigError("continual.scenario = 'class': expected mnist tasks with digits "
                          "(one head over all digits)")


ENCODER_INPUTS = {"conv": "text", "attention": "text", "cnn": "images", "mlp": "images",
                  "gat": "graphs"}


def _check_tasks(config):
    """Keys that only some task sources or model shapes understand."""
    feature_map = config["model"]["encoder"] == "cnn" and config["model"]["features"] == 0
    if config["model"]["features"] == 0 and not feature_map:
        raise ConfigError("model.features = 0: only the cnn encoder can hand its feature map "
                          "to the heads; expected a number >= 1")
    takers = source_options()
    for name, spec in config["tasks"].items():
        where = f"tasks.{name}"
        source = datasets.SOURCES[spec["generator"]]
        for key in sorted(set(takers) - set(source.OPTIONS)):
            if spec.get(key) is not None:
                names = takers[key]
                sources = names[0] if len(names) == 1 else \
                    f"{', '.join(names[:-1])} and {names[-1]}"
                plural = len(takers[key]) > 1
                raise ConfigError(f"{where}.{key}: only the {sources} source{'s' if plural else ''}"
                                  f" take{'' if plural else 's'} it; {spec['generator']!r} does not")
        spec.update(check_section(source.OPTIONS, {k: spec[k] for k in source.OPTIONS
                                                   if spec.get(k) is not None}, where))
        source.check(spec, where)
        head = spec["head"]
        if head is not None and (head == "linear") == feature_map:
            expected = "gap, flatten or spatial" if feature_map else "linear"
            raise ConfigError(f"{where}.head = {head!r}: the backbone gives a feature "
                              f"{'map' if feature_map else 'vector'}; expected {expected}")
    encoder = config["model"]["encoder"]
    for name, spec in config["tasks"].items():
        inputs = datasets.SOURCES[spec["generator"]].inputs
        if inputs != ENCODER_INPUTS[encoder]:
            fitting = ", ".join(e for e, kind in ENCODER_INPUTS.items() if kind == inputs)
            raise ConfigError(f"model.encoder = {encoder!r} reads {ENCODER_INPUTS[encoder]}, "
                              f"but tasks.{name} ({spec['generator']}) is {inputs}; expected "
                              f"one of {fitting}")
    modes = [p["mode"] for p in config["training"]["phases"] or []] + \
        [config["training"]["schedule"]]
    if "joint" in modes and len(config["tasks"]) > 1:
        sets = {(s["generator"], s.get("train_size"), s.get("test_size"), s.get("valid_size"))
                for s in config["tasks"].values()}
        if len(sets) != 1 or not datasets.SOURCES[next(iter(sets))[0]].shared_inputs:
            raise ConfigError("training.schedule: a joint schedule puts each batch through "
                              "every head, so it needs tasks that label the same examples; "
                              "expected tasks of one image set (shapes3, multi_mnist) with "
                              "the same sizes")


def _check_callbacks(config):
    """Each callback can be made from its options, and one that watches a validation score
    (``monitor``) names a task of the config, 'mean' or 'delta_m'."""
    from tinymtl.mtl.plugin import create

    for k, spec in enumerate(config["callbacks"]):
        where = f"callbacks[{k}]"
        try:
            create("callback", spec)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        monitor = spec.get("monitor")
        allowed = ["mean", "delta_m"] + list(config["tasks"])
        if monitor is not None and monitor not in allowed:
            raise ConfigError(f"{where}.monitor = {monitor!r}: expected one of "
                              f"{', '.join(allowed)}")


METHOD_KEYS = {"weighting": "training.weighting", "gradients": "training.gradients",
               "continual": "continual.method", "callback": "callbacks"}


def method_listing(kind=None):
    """The registry as text: per kind, where a config names it, then each method with its
    first docstring line and its options (type, default, help): ``tinymtl methods``."""
    lines = []
    for each in [kind] if kind else list(METHOD_KEYS):
        lines.append(f"{each} ({METHOD_KEYS[each]}):")
        for name, cls in methods(each).items():
            summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            lines.append(f"  {name:<14} {summary}")
            for option, field in cls.OPTIONS.items():
                help_text = f"  {field.help}" if field.help else ""
                lines.append(f"      {option:<14} {field.describe()}{help_text}")
        if not methods(each):
            lines.append("  (none registered)")
    return "\n".join(lines)


def _resolved(c):
    """A config in the form runs compare: validated (defaults filled in, earlier versions' flat
    keys resolved), with what changes nothing a run computes left out."""
    plain = json.loads(json.dumps(c))
    try:
        config = dict(validate(copy.deepcopy(plain)), name=plain.get("name"))
    except ConfigError:
        return plain
    # a job's time slot and how often it saves change nothing a run computes: resuming with
    # others is fine
    if isinstance(config.get("training"), dict):
        config["training"] = dict(config["training"], max_time=None, checkpoint_every=None,
                                  keep_checkpoints=None)
    return config


def same_config(saved, config):
    """Whether a config saved by a run (in its checkpoint or summary, perhaps by an earlier
    version, in the flat form) is ``config``: both compared in their resolved form."""
    return _resolved(saved) == _resolved(config)


def config_differences(saved, config):
    """The dotted keys whose values differ between two configs in their resolved form, e.g.
    ['training.lr', 'tasks.math.train_size'] (what a refused resume names)."""
    def walk(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            return [key for k in sorted(set(a) | set(b), key=str)
                    for key in walk(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))]
        return [] if a == b else [where or "config"]

    return walk(_resolved(saved), _resolved(config), "")


class Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (no code in configs) reading numbers as people write them:
    YAML 1.2's floats, so ``lr: 1e-3`` and ``5E-4`` are numbers (PyYAML follows YAML 1.1,
    where a float needs a dot: ``1e-3`` would be the string "1e-3")."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"))


def load_yaml(text):
    """The YAML ``text`` as Python values (``Loader``)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506  (a SafeLoader)


def read_yaml(path):
    """A YAML file's mapping (``Loader``: no code in configs); ConfigError otherwise."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (it is not UTF-8); expected a YAML "
                          f"config") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    try:
        raw = load_yaml(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if raw is None or not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of config sections")
    return raw


def merge(base, overrides):
    """``base`` with ``overrides`` merged in, mapping by mapping (neither is changed): how a
    comparison's strategy or a sweep's arm is its base config with a few keys changed."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_overrides(raw, overrides):
    """``raw`` with each ``section.key=value`` of ``overrides`` set (the value read as YAML,
    e.g. ``continual.method=replay``, ``training.steps=500``, ``tasks.math.lr=0.01``)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.steps=500")
        try:
            value = load_yaml(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        set_key(raw, key, value, f"--set {item!r}")
    return raw


def set_key(raw, key, value, where):
    """Set the dotted ``key`` (e.g. ``training.lr``) of the mapping ``raw`` to ``value``,
    creating sections as needed; a key through a value that is not a section is refused."""
    *sections, last = key.split(".")
    target = raw
    for section in sections:
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{where}: {section!r} is not a section")
    target[last] = value


def load(path, raw=None, overrides=()):
    """Read and validate a run config file (``raw``: its mapping, when already read;
    ``overrides``: ``section.key=value`` strings applied before validation)."""
    path = pathlib.Path(path)
    raw = apply_overrides(read_yaml(path) if raw is None else raw, overrides)
    config = validate(raw, str(path))
    config["name"] = config["name"] or path.stem
    stage = (config.get("model") or {}).get("pretrain")
    if stage and not pathlib.Path(stage).is_absolute() and (path.parent / stage).exists():
        config["model"]["pretrain"] = str(path.parent / stage)  # beside the config file
    return config
