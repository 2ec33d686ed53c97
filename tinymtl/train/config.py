"""Run configs: YAML (``yaml.safe_load`` only) checked against a schema, with defaults filled in.

Every problem is reported as one line that names the file, the key, the value and what is
allowed, e.g.  ``examples/x.yaml: training.lr = -1: expected a number > 0``.
"""

import copy
import pathlib

import yaml

from tinymtl.datasets import IMAGE_SETS, SOURCES
from tinymtl.mtl.architectures import ARCHITECTURES
from tinymtl.mtl.continual import METHODS as CONTINUAL_METHODS
from tinymtl.mtl.heads import HEADS
from tinymtl.mtl.sampling import METHODS as SAMPLING_METHODS
from tinymtl.mtl.surgery import METHODS as GRADIENT_METHODS
from tinymtl.mtl.weighting import METHODS as WEIGHTING_METHODS
from tinymtl.mtl.schedules import MODES, SCHEDULES


class ConfigError(ValueError):
    """A config that does not fit the schema; the message is one line."""


# -- schema building blocks ---------------------------------------------------------------------
class Field:
    def __init__(self, default=None, required=False):
        self.default, self.required = default, required


class Int(Field):
    def __init__(self, default=None, low=None, high=None, **kw):
        super().__init__(default, **kw)
        self.low, self.high = low, high

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}: expected an integer")
        _check_range(value, self.low, self.high, where, "an integer")
        return value


class Float(Int):
    def __init__(self, default=None, low=None, high=None, positive=False, **kw):
        super().__init__(default, low, high, **kw)
        self.positive = positive

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: expected a number")
        if self.positive and not value > 0:
            raise ConfigError(f"{where} = {value!r}: expected a number > 0")
        _check_range(value, self.low, self.high, where, "a number")
        return float(value)


class Bool(Field):
    def check(self, value, where):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: expected true or false")
        return value


class Str(Field):
    def check(self, value, where):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} = {value!r}: expected a non-empty string")
        return value


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


class Choice(Field):
    def __init__(self, choices, default=None, **kw):
        super().__init__(default, **kw)
        self.choices = tuple(choices)

    def check(self, value, where):
        if value not in self.choices:
            raise ConfigError(f"{where} = {value!r}: expected one of {', '.join(self.choices)}")
        return value


class ListOf(Field):
    def __init__(self, item, default=None, min_length=1, **kw):
        super().__init__(default, **kw)
        self.item, self.min_length = item, min_length

    def check(self, value, where):
        if not isinstance(value, list) or len(value) < self.min_length:
            raise ConfigError(f"{where} = {value!r}: expected a list of at least "
                              f"{self.min_length} item(s)")
        return [_check(self.item, v, f"{where}[{k}]") for k, v in enumerate(value)]


class MapOf(Field):
    """A mapping from user-chosen names to values of one schema (e.g. tasks)."""

    def __init__(self, item, min_length=1, **kw):
        super().__init__(None, **kw)
        self.item, self.min_length = item, min_length

    def check(self, value, where):
        if not isinstance(value, dict) or len(value) < self.min_length:
            raise ConfigError(f"{where}: expected a mapping with at least {self.min_length} "
                              f"entr{'y' if self.min_length == 1 else 'ies'}")
        return {str(k): _check(self.item, v, f"{where}.{k}") for k, v in value.items()}


def _check_range(value, low, high, where, kind):
    if low is not None and value < low:
        raise ConfigError(f"{where} = {value!r}: expected {kind} >= {low}")
    if high is not None and value > high:
        raise ConfigError(f"{where} = {value!r}: expected {kind} <= {high}")


def _check(schema, value, where):
    if isinstance(schema, dict):
        return _check_section(schema, value, where)
    return schema.check(value, where)


def _check_section(schema, values, where):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    unknown = sorted(set(values) - set(schema))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown key {key!r}; allowed here: {', '.join(schema)}")
    result = {}
    for key, field in schema.items():
        name = f"{where}.{key}" if where else key
        if key in values and values[key] is not None:
            result[key] = _check(field, values[key], name)
        elif isinstance(field, dict):
            result[key] = _check_section(field, {}, name)
        elif field.required:
            raise ConfigError(f"missing key {name!r}")
        else:
            result[key] = copy.deepcopy(field.default)
    return result


# -- the run schema -------------------------------------------------------------------------------
PHASE = {
    "tasks": ListOf(Str(), required=True),
    "mode": Choice(MODES, default="alternating"),
    "steps": Int(low=1, required=True),
}

SCHEMA = {
    "name": Str(),
    "seed": Int(default=0, low=0),
    "device": Choice(("cpu", "cuda"), default="cpu"),
    "data": {
        "seed": Int(default=0, low=0),
        "max_length": Int(default=20, low=4, high=256),
        "cache": Bool(default=True),
    },
    "tasks": MapOf({
        "generator": Choice(SOURCES, required=True),
        "train_size": Int(low=10),  # default: 20000 for generated text, all for real data
        "test_size": Int(low=10),   # default: 2000 for generated text, all for real data
        "target": Str(),            # image sets (shapes3): which label this task learns
        "well_posed": Bool(),       # shapes3 orientation: fold each shape's symmetry out
        "digits": ListOf(Int(low=0, high=9)),  # mnist: only these digits (split MNIST)
        "permutation": Int(low=0),  # mnist: pixels shuffled by the permutation of this seed
        "head": Choice(HEADS),      # default: linear on a feature vector, gap on a feature map
        "loss_weight": Float(default=1.0, low=0.0),
        "lr": Float(positive=True),  # this task's head's own rate (default: training.lr)
        "stop_gradient": Bool(default=False),  # the head learns; the backbone gets no gradient
    }, required=True),
    "model": {
        "architecture": Choice(ARCHITECTURES, default="hard"),  # what is shared: mtl.architectures
        "adapter_hidden": Int(default=64, low=1),  # adapters: each task's bottleneck width
        "experts": Int(default=4, low=2),          # mmoe: how many expert backbones
        "encoder": Choice(("conv", "attention", "cnn", "mlp"), default="conv"),
        "hidden": ListOf(Int(low=1), default=[400, 400]),  # mlp encoder: hidden layer widths
        "embedding_dim": Int(default=32, low=1),
        "channels": ListOf(Int(low=1), default=[64, 64]),
        "kernel_size": Int(default=3, low=1),
        "pooling": Choice(("flatten", "max", "flatten+max"), default="flatten"),
        "padding": Int(default=0, low=0),      # cnn encoder: zero padding of each conv
        "batch_norm": Bool(default=False),     # cnn encoder: BatchNorm2d after each conv
        "features": Int(default=256, low=0),   # cnn: 0 = heads read the last feature map
        "freeze_backbone": Bool(default=False),  # train the heads only
        "backbone_from": Str(),                # checkpoint whose backbone weights to start from
        "head_hidden": Int(default=0, low=0),
        "dropout": Float(default=0.0, low=0.0, high=0.99),
    },
    "training": {
        "schedule": Choice(SCHEDULES, default="alternating"),
        "steps": Int(default=4000, low=1),
        "epochs": Int(low=1),       # instead of steps: passes over the (single) task's data
        "accumulate": Int(default=1, low=1),  # micro-batches summed into each update
        "phases": ListOf(PHASE, default=None),
        "sampling": Choice(SAMPLING_METHODS, default="round_robin"),  # alternating phases
        "sampling_temperature": Float(default=2.0, positive=True),
        "weighting": Choice(WEIGHTING_METHODS, default="static"),  # how task losses combine
        "gradnorm_alpha": Float(default=1.5, low=0.0),
        "dwa_temperature": Float(default=2.0, positive=True),
        "dwa_window": Int(default=100, low=1),  # steps per DWA averaging window
        "gradients": Choice(GRADIENT_METHODS, default="sum"),  # gradient surgery on shared params
        "cagrad_c": Float(default=0.5, low=0.0),
        "batch_size": Int(default=64, low=1),
        "optimizer": Choice(("adam", "adamw", "sgd"), default="adam"),
        "lr": Float(default=3e-3, positive=True),
        "momentum": Float(default=0.9, low=0.0, high=1.0),
        "weight_decay": Float(default=0.0, low=0.0),
        "lr_schedule": Choice(("constant", "cosine", "step"), default="cosine"),
        "warmup_steps": Int(default=0, low=0),
        "grad_clip": Float(default=0.0, low=0.0),
        "eval_every": Int(default=250, low=1),
        "log_every": Int(default=50, low=1),
        "checkpoint_every": Int(default=0, low=0),
    },
    "continual": {  # train.continual: tasks in sequence, one stage each (absent: multi-task)
        "stages": ListOf(Str(), default=None),  # task names, in training order
        "scenario": Choice(("task", "domain", "class"), default="task"),
        "method": Choice(CONTINUAL_METHODS + ("offline",), default="finetune"),
        "ewc_lambda": Float(default=100.0, low=0.0),
        "fisher": Choice(("empirical", "true"), default="empirical"),
        "fisher_samples": Int(default=1000, low=1),
        "online_gamma": Float(default=1.0, low=0.0, high=1.0),
        "si_c": Float(default=1.0, low=0.0),
        "si_xi": Float(default=0.1, positive=True),
        "replay_size": Int(default=1000, low=1),
        "replay_ratio": Float(default=1.0, positive=True),
        "lwf_temperature": Float(default=2.0, positive=True),
        "lwf_alpha": Float(default=1.0, low=0.0),
    },
    "baselines": Baselines(default="single_task"),  # train.baselines: what transfer is against
    "linear_baseline": Bool(default=True),
}


def validate(raw, source="config"):
    """The checked config with defaults filled in; ConfigError (one line) otherwise."""
    try:
        config = _check_section(SCHEMA, raw, "")
        tasks = list(config["tasks"])
        training = config["training"]
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
        for key, needs in (("weighting", "gradnorm"), ("gradients", "pcgrad"),
                           ("gradients", "cagrad"), ("gradients", "mgda")):
            if training[key] == needs and (len(tasks) < 2 or any(
                    mode not in ("joint", "mixed") for mode in modes)):
                raise ConfigError(f"training.{key} = {needs!r}: it compares every task's "
                                  f"gradient in each step; expected a joint or mixed schedule "
                                  f"of at least two tasks")
        if training["weighting"] == "gradnorm" and training["accumulate"] > 1:
            raise ConfigError("training.weighting = 'gradnorm': expected training.accumulate = 1")
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
    if training["weighting"] != "static" or training["gradients"] != "sum":
        raise ConfigError("continual: each stage trains one task; expected training.weighting "
                          "= 'static' and training.gradients = 'sum'")
    if continual["scenario"] == "class" and any(
            config["tasks"][t]["digits"] is None for t in continual["stages"]):
        raise ConfigError("continual.scenario = 'class': expected mnist tasks with digits "
                          "(one head over all digits)")


def _check_tasks(config):
    """Keys that only some task sources or model shapes understand."""
    feature_map = config["model"]["encoder"] == "cnn" and config["model"]["features"] == 0
    if config["model"]["features"] == 0 and not feature_map:
        raise ConfigError("model.features = 0: only the cnn encoder can hand its feature map "
                          "to the heads; expected a number >= 1")
    for name, spec in config["tasks"].items():
        where = f"tasks.{name}"
        if spec["generator"] in IMAGE_SETS:
            targets = IMAGE_SETS[spec["generator"]].TARGETS
            if spec["target"] not in targets:
                raise ConfigError(f"{where}.target = {spec['target']!r}: expected one of "
                                  f"{', '.join(targets)}")
        elif spec["target"] is not None:
            raise ConfigError(f"{where}.target: only image sets ({', '.join(IMAGE_SETS)}) "
                              f"take a target; {spec['generator']!r} has one label")
        for key in ("digits", "permutation"):
            if spec[key] is not None and spec["generator"] != "mnist":
                raise ConfigError(f"{where}.{key}: only the mnist source takes it")
        if spec["digits"] is not None and len(set(spec["digits"])) != len(spec["digits"]):
            raise ConfigError(f"{where}.digits = {spec['digits']!r}: expected distinct digits")
        if spec["well_posed"] is not None and spec["target"] != "orientation":
            raise ConfigError(f"{where}.well_posed: only an orientation target takes it")
        head = spec["head"]
        if head is not None and (head == "linear") == feature_map:
            expected = "gap, flatten or spatial" if feature_map else "linear"
            raise ConfigError(f"{where}.head = {head!r}: the backbone gives a feature "
                              f"{'map' if feature_map else 'vector'}; expected {expected}")


def read_yaml(path):
    """A YAML file's mapping (``yaml.safe_load``: no code in configs); ConfigError otherwise."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if raw is None or not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of config sections")
    return raw


def apply_overrides(raw, overrides):
    """``raw`` with each ``section.key=value`` of ``overrides`` set (the value read as YAML,
    e.g. ``continual.method=replay``, ``training.steps=500``, ``tasks.math.lr=0.01``)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.steps=500")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        *sections, last = key.split(".")
        target = raw
        for section in sections:
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: {section!r} is not a section")
        target[last] = value
    return raw


def load(path, raw=None, overrides=()):
    """Read and validate a run config file (``raw``: its mapping, when already read;
    ``overrides``: ``section.key=value`` strings applied before validation)."""
    path = pathlib.Path(path)
    raw = apply_overrides(read_yaml(path) if raw is None else raw, overrides)
    config = validate(raw, str(path))
    config["name"] = config["name"] or path.stem
    return config
