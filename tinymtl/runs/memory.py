"""Will this run fit in memory? Checked twice before training, never by running out.

A config asking for ``hidden: [60000, 60000]`` or ``batch_size: 10000000`` should be refused
with one line saying how much it needs, not end in a MemoryError, an out-of-memory kill or a
machine swapping for an hour. Training memory is, in float32 (4 bytes a number):

    data          every task's train and test arrays (an image set shared by tasks: once)
    weights       P = the model's parameter count, 4P bytes
    gradients     4P
    optimizer     4P per state array (Adam: m and v, 2; SGD with momentum: 1)
    methods       4P per copy a method keeps (PCGrad: each task's gradient; EWC: Fisher and
                  anchor per past task; LwF: the teacher), ``Plugin.memory_copies``
    activations   what one step's graph keeps until backward, and as much again for the
                  gradients flowing back: the graph bytes of a batch, measured at one and two
                  examples and extended linearly, fixed + B x per example (a node task's
                  encoder runs on its whole graph once a step: a large fixed part)

1. ``check_plan`` runs before anything is loaded or built: data from each source's
   ``DataPlan`` and P from the model built inside ``nn.init.empty_weights()`` (shapes only,
   like PyTorch's meta device), against the memory available now.
2. ``check_step`` runs once the tasks and the model exist, before the first step writes or
   allocates anything more: the activations of one example are measured on the real model
   (``autograd.graph_bytes``), scaled to the batch, and with the gradients, optimizer state and
   method copies checked against what is still available.
Both raise a one-line ConfigError with the estimate and what it would take to fit.
"""

from tinymtl import datasets
from tinymtl.autograd import enable_grad, graph_bytes
from tinymtl.backend import get_default_dtype
from tinymtl.backend.memory import available_bytes, format_bytes
from tinymtl.errors import ConfigError
from tinymtl.mtl import build_model
from tinymtl.mtl.model import graph_options
from tinymtl.mtl.model import model_input
from tinymtl.mtl.plugin import create
from tinymtl.nn.init import empty_weights
from tinymtl.train.config import method_spec
from tinymtl.train.trainer import make_optimizer

SIZE_KEYS = "model sizes, training.batch_size or tasks.*.train_size"


def method_plugins(config):
    """The config's plugins that may keep copies of the weights (gradient methods, the
    continual method)."""
    continual = config.get("continual") or {}
    kinds = ("continual",) if continual.get("stages") else ("gradients",)
    return [create(kind, method_spec(config, kind)) for kind in kinds]


def per_parameter_arrays(config, parameters, tasks):
    """Arrays the size of the weights that training adds: gradients, optimizer state and
    method copies."""
    optimizer = make_optimizer(parameters, config["training"])
    return 1 + optimizer.state_arrays + sum(p.memory_copies(tasks) for p in method_plugins(config))


def plan(config, specs, shared_head=False):
    """The estimate before loading or building anything: ``{part: bytes}``."""
    plans, data = {}, {}
    for task, spec in specs.items():
        source = datasets.source(spec["generator"])
        plans[task] = source.plan(spec, config["data"]["max_length"], f"tasks.{task}")
        data[plans[task].shared or task] = plans[task].data_bytes
    shapes = {p.example_shape for p in plans.values()}
    input_shape = max(shapes, key=lambda s: len(s))
    with empty_weights():
        model = build_model(config["model"], {t: p.outputs for t, p in plans.items()},
                            input_shape, config["tasks"], shared_head=shared_head,
                            **graph_options(config["model"], next(iter(plans.values())),
                                            "the tasks' data"))
    parameters = list(model.parameters())
    weights = sum(p.data.size for p in parameters) * get_default_dtype().itemsize
    return {"data": sum(data.values()), "weights": weights,
            "training state": weights * per_parameter_arrays(config, parameters, list(specs))}


def step(config, model, tasks):
    """What the first step will still allocate, once ``model`` and ``tasks`` exist."""
    parameters = list(model.parameters())
    weights = sum(p.data.nbytes for p in parameters)
    batch = config["training"]["batch_size"]
    per_batch = {}
    was_training = model.training
    model.eval()  # no dropout draw: measuring must not move any random stream
    try:
        for task, data in tasks.items():
            one, two = (batch_graph_bytes(model, task, data.x_train[:n]) for n in (1, 2))
            per_example = two - one if len(data.x_train) > 1 else one
            fixed = max(one - per_example, 0)
            per_batch[task] = fixed + max(per_example, 0) * batch
    finally:
        model.train(was_training)
    joint = config["training"].get("schedule") == "joint"
    activations = sum(per_batch.values()) if joint else max(per_batch.values())
    return {"training state": weights * per_parameter_arrays(config, parameters, list(tasks)),
            "activations": 2 * activations}


def batch_graph_bytes(model, task, inputs):
    """The bytes the autograd graph of ``model`` on ``inputs`` keeps for backward."""
    with enable_grad():
        output = model(model_input(inputs), task)
    try:
        return graph_bytes(output)
    finally:
        del output


def describe(parts):
    """'about 15.5 MiB (data 7.0 MiB, weights 2.1 MiB, ...)' for an estimate's parts."""
    detail = ", ".join(f"{name} {format_bytes(size)}" for name, size in parts.items() if size)
    return f"about {format_bytes(sum(parts.values()))} ({detail})"


def _refuse_if_short(parts, config):
    available = available_bytes(config.get("device", "cpu"))
    if available is None or sum(parts.values()) <= available:
        return parts
    raise ConfigError(f"memory: this run needs {describe(parts)} but "
                      f"{format_bytes(available)} is available; expected smaller {SIZE_KEYS}")


def check_plan(config, specs, shared_head=False):
    """Refuse (one line) a config whose data, weights and training state cannot fit; returns
    the estimate."""
    return _refuse_if_short(plan(config, specs, shared_head), config)


def check_step(config, model, tasks):
    """Refuse (one line) a run whose first step cannot fit in what is left; returns the
    estimate of what the step adds."""
    return _refuse_if_short(step(config, model, tasks), config)
