"""``MultiTaskModel``: a shared backbone, and per task a private path to its own head.

    features = backbone(x)                          shared by every task
    outputs_t = heads[t](private[t](features))      one head per task, own output size

``private[t]`` is nothing for hard parameter sharing, a residual adapter, or an MMoE gate over
expert backbones (``mtl.architectures``).

One model, one process, any task: ``model(x, "math")`` and ``model(x, "kindergarten")`` use the
same backbone weights — "task switching" is just choosing the head. ``x`` is a Tensor, or a
task's raw inputs (an array, or a ``GraphSet`` of graphs): ``model_input`` makes them one.

Two ways to keep a task from shaping the shared features:

    stop_gradient    heads[t](sg(features)): the head learns, but no gradient of task t's loss
                     reaches the backbone (the task is "isolated": it only reads features)
    freeze_backbone  the backbone's parameters take no gradient and stay in eval mode (batch
                     norm statistics fixed): only the heads train, e.g. on a loaded backbone
"""

import numpy as np

from tinymtl import nn
from tinymtl.autograd import Tensor, no_grad
from tinymtl.datasets import VOCAB_SIZE
from tinymtl.graph import Graph, GraphEncoder, GraphSet, NodeSet
from tinymtl.mtl.architectures import ARCHITECTURES, Adapter, Experts, Gate
from tinymtl.mtl.heads import make_head
from tinymtl.nn.utils import module_device

PRIVATE = ("heads", "adapters", "gates")  # the task-private submodules, by attribute name


def concatenate_inputs(parts):
    """Several batches of inputs as one (a mixed batch): arrays stacked, or graph sets
    joined."""
    if isinstance(parts[0], (GraphSet, NodeSet)):
        return type(parts[0]).concatenate(parts)
    return np.concatenate(parts)


def model_input(x, device=None):
    """What a backbone reads, from a batch of a task's inputs: a Tensor of an array (text
    ids, pixels) on ``device`` (the model's: batches are drawn in host memory and moved here,
    as ``x.to(device)`` in a PyTorch loop), or one collated ``Graph`` of a ``GraphSet``'s
    graphs, moved there too."""
    if isinstance(x, GraphSet):
        x = x.collate()
    if isinstance(x, (Graph, NodeSet)):  # (a NodeSet: the encoder reads its graph)
        return x if device is None else x.to(device)
    if isinstance(x, Tensor):
        return x if device is None or x.device == device else x.to(device)
    return Tensor(x, device=device)


class MultiTaskModel(nn.Module):
    def __init__(self, backbone, heads, stop_gradient=(), freeze_backbone=False, adapters=None,
                 gates=None, head_of=None):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        # task -> the key of the head it reads: itself, unless tasks share one head (continual
        # learning's domain- and class-incremental settings)
        self.head_of = dict(head_of or {t: t for t in heads})
        self.adapters = nn.ModuleDict(adapters or {})
        self.gates = nn.ModuleDict(gates or {})
        self.stop_gradient = frozenset(stop_gradient)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            backbone.requires_grad_(False)
            backbone.eval()

    @property
    def tasks(self):
        return list(self.head_of)

    def train(self, mode=True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    @property
    def device(self):
        """Where the parameters are ('cpu' or 'cuda'): inputs are moved there."""
        return module_device(self)

    def features(self, x):
        x = model_input(x, self.device)
        if self.freeze_backbone:
            with no_grad():
                return self.backbone(x)
        return self.backbone(x)

    def forward(self, x, task):
        if task not in self.head_of:
            raise KeyError(f"unknown task {task!r}; this model has {', '.join(self.tasks)}")
        return self.forward_heads(self.features(x), task)

    def forward_heads(self, features, task):
        """Apply one head to features already computed by the backbone (mixed batches)."""
        if task in self.stop_gradient:
            features = features.detach()
        if task in self.gates:
            features = self.gates[task](features)
        if task in self.adapters:
            features = self.adapters[task](features)
        return self.heads[self.head_of[task]](features)

    def shared_parameters(self):
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def last_shared_layer(self):
        """The weights of the backbone's last layer — of every expert's, with MMoE (GradNorm
        measures gradient norms on them)."""
        experts = self.backbone.experts if isinstance(self.backbone, Experts) else [self.backbone]
        return [[p for p in expert.parameters() if p.data.ndim >= 2][-1] for expert in experts]

    def task_parameters(self, task):
        """Task ``task``'s private parameters: its head, and its adapter or gate if any."""
        keys = {"heads": self.head_of[task], "adapters": task, "gates": task}
        return [p for name in PRIVATE if keys[name] in getattr(self, name)
                for p in getattr(self, name)[keys[name]].parameters()]

    def private_state_dict(self, tasks=None):
        """The task-private weights (heads, adapters, gates) of ``tasks`` (default: all), named
        as in ``state_dict()``: what a task adds to a shared backbone."""
        tasks = set(self.tasks if tasks is None else tasks)
        return {key: value for key, value in self.state_dict().items()
                if key.split(".")[0] in PRIVATE and key.split(".")[1] in tasks}

    def load_private_state_dict(self, state):
        """Load task-private weights (a ``private_state_dict``) onto this model's shared
        backbone; every other weight is kept. Raises ValueError naming a key that does not fit."""
        own = self.state_dict()
        for key, value in state.items():
            if key.split(".")[0] not in PRIVATE:
                raise ValueError(f"{key!r} is not a task-private weight (heads, adapters, gates)")
            if key not in own:
                raise ValueError(f"{key!r}: this model has no such weight (its tasks: "
                                 f"{', '.join(self.tasks)})")
            if tuple(own[key].shape) != tuple(value.shape):
                raise ValueError(f"{key!r}: shape {tuple(value.shape)} does not fit this model's "
                                 f"{tuple(own[key].shape)}")
        self.load_state_dict(state, strict=False)


def build_backbone(model_config, input_shape, edge_dim=None, relations=0):
    """The shared encoder for inputs of ``input_shape`` (one example's: (length,) for text,
    (channels, height, width) for images, (node features,) for graphs; ``edge_dim``: the
    width of the graphs' edge features, which a gat encoder with ``edge_features`` reads;
    ``relations``: how many edge types a gat encoder gives attention of its own, 0 for none)."""
    if model_config["encoder"] == "mlp":
        return nn.MLPEncoder(int(np.prod(input_shape)), tuple(model_config["hidden"]))
    if model_config["encoder"] == "cnn":
        return nn.ConvEncoder(
            input_shape[0], input_shape[1:], channels=tuple(model_config["channels"]),
            kernel_size=model_config["kernel_size"], padding=model_config["padding"],
            out_features=model_config["features"] or None, dropout=model_config["dropout"],
            batch_norm=model_config["batch_norm"])
    if model_config["encoder"] == "conv":
        return nn.CharConvEncoder(
            VOCAB_SIZE, input_shape[0], embedding_dim=model_config["embedding_dim"],
            channels=tuple(model_config["channels"]), kernel_size=model_config["kernel_size"],
            out_features=model_config["features"], pooling=model_config["pooling"])
    if model_config["encoder"] == "gat":
        return GraphEncoder(input_shape[0], tuple(model_config["hidden"]),
                            heads=model_config["heads"], pooling=model_config["graph_pooling"],
                            dropout=model_config["dropout"],
                            edge_dim=edge_dim if model_config.get("edge_features") else None,
                            num_relations=relations or None)
    # (it averages over positions: ``model.pooling`` is the conv encoder's)
    return nn.SelfAttentionEncoder(VOCAB_SIZE, input_shape[0], dim=model_config["embedding_dim"],
                                   out_features=model_config["features"])


def graph_options(model_config, inputs, where="the tasks"):
    """What a gat encoder reads of its graphs' structure, as ``build_model``'s keywords:
    ``edge_dim``, the width of the edge features (with ``model.edge_features``), and
    ``relations``, how many edge types get attention of their own (with ``model.relations``).
    ``inputs``: a task's GraphSet or NodeSet, or its DataPlan (known before loading)."""
    found = {"edge_dim": None, "relations": 0}
    if model_config.get("encoder") != "gat":
        return found
    graph = getattr(inputs, "graph", inputs)  # a NodeSet's graph
    if hasattr(inputs, "edge_features"):  # a DataPlan
        width, types = inputs.edge_features, inputs.relations
    else:
        attr, kinds = getattr(graph, "edge_attr", None), getattr(graph, "edge_type", None)
        width = None if attr is None else attr.shape[1]
        types = 0 if kinds is None or not len(kinds) else int(kinds.max()) + 1
    if model_config.get("edge_features"):
        if not width:
            raise ValueError(f"model.edge_features: {where} have no edge features; expected "
                             f"graphs with edge_attr (e.g. molecules' bonds) or "
                             f"edge_features: false")
        found["edge_dim"] = width
    if model_config.get("relations"):
        if not types:
            raise ValueError(f"model.relations: {where} have no edge types; expected graphs "
                             f"with edge_type (e.g. the food graph's relations) or "
                             f"relations: false")
        found["relations"] = types
    return found


def feature_shape(backbone):
    return getattr(backbone, "out_shape", (backbone.out_features,))


def default_head(shape):
    return "linear" if len(shape) == 1 else "gap"


def build_model(model_config, task_outputs, input_shape, task_configs=None, shared_head=False,
                edge_dim=None, relations=0):
    """The model a config describes: the backbone, and a head per task with
    ``task_outputs[task]`` outputs, of the kind ``task_configs[task]["head"]`` names
    (``shared_head``: one head, named "shared", that every task reads; as wide as the widest;
    ``edge_dim``, ``relations``: what a gat encoder reads of the graphs, ``graph_options``)."""
    task_configs = task_configs or {}
    architecture = model_config.get("architecture", "hard")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of "
                         f"{', '.join(ARCHITECTURES)}")
    if architecture == "mmoe":
        backbone = Experts([build_backbone(model_config, input_shape, edge_dim, relations)
                            for _ in range(model_config["experts"])], VOCAB_SIZE)
        shape = backbone.out_shape
    else:
        backbone = build_backbone(model_config, input_shape, edge_dim, relations)
        shape = feature_shape(backbone)
    head_dropout = 0.0 if model_config["encoder"] == "cnn" else model_config["dropout"]
    tasks, head_of, head_outputs = list(task_outputs), None, dict(task_outputs)
    if shared_head:
        head_of = {task: "shared" for task in tasks}
        head_outputs = {"shared": max(task_outputs.values())}
    heads = {}
    for key, outputs in head_outputs.items():
        kind = task_configs.get(key, {}).get("head") or default_head(shape)
        heads[key] = make_head(kind, shape, outputs, model_config["head_hidden"], head_dropout)
    stop_gradient = [t for t in tasks if task_configs.get(t, {}).get("stop_gradient")]
    adapters = gates = None
    if architecture == "adapters":
        adapters = {task: Adapter(shape, model_config["adapter_hidden"]) for task in tasks}
    if architecture == "mmoe":
        gate_features = VOCAB_SIZE if len(input_shape) == 1 else int(np.prod(input_shape))
        gates = {task: Gate(gate_features, model_config["experts"]) for task in tasks}
    return MultiTaskModel(backbone, heads, stop_gradient,
                          freeze_backbone=model_config.get("freeze_backbone", False),
                          adapters=adapters, gates=gates, head_of=head_of)
