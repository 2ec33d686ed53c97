"""``MultiTaskModel``: hard parameter sharing.

    features = backbone(x)              shared by every task
    logits_t = heads[t](features)       one head per task, each with its own output size

One model, one process, any task: ``model(x, "math")`` and ``model(x, "kindergarten")`` use the
same backbone weights — "task switching" is just choosing the head.
"""

from tinymtl import nn
from tinymtl.datasets import VOCAB_SIZE


class MultiTaskModel(nn.Module):
    def __init__(self, backbone, heads):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    @property
    def tasks(self):
        return list(self.heads.keys())

    def forward(self, x, task):
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; this model has {', '.join(self.tasks)}")
        return self.heads[task](self.backbone(x))

    def forward_heads(self, features, task):
        """Apply one head to features already computed by the backbone (mixed batches)."""
        return self.heads[task](features)

    def shared_parameters(self):
        return list(self.backbone.parameters())

    def task_parameters(self, task):
        return list(self.heads[task].parameters())


def _head(in_features, hidden, out_features, dropout):
    if not hidden:
        return nn.Linear(in_features, out_features)
    layers = [nn.Linear(in_features, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(hidden, out_features))


def build_model(model_config, task_classes, input_shape):
    """The model a config describes: an encoder for inputs of ``input_shape`` (one example's:
    (length,) for text, (channels, height, width) for images) and a head per task."""
    if model_config["encoder"] == "cnn":
        backbone = nn.ConvEncoder(
            input_shape[0], input_shape[1:], channels=tuple(model_config["channels"]),
            kernel_size=model_config["kernel_size"], padding=model_config["padding"],
            out_features=model_config["features"], dropout=model_config["dropout"],
            batch_norm=model_config["batch_norm"])
    elif model_config["encoder"] == "conv":
        backbone = nn.CharConvEncoder(
            VOCAB_SIZE, input_shape[0], embedding_dim=model_config["embedding_dim"],
            channels=tuple(model_config["channels"]), kernel_size=model_config["kernel_size"],
            out_features=model_config["features"], pooling=model_config["pooling"])
    else:
        backbone = nn.SelfAttentionEncoder(VOCAB_SIZE, input_shape[0],
                                           dim=model_config["embedding_dim"],
                                           out_features=model_config["features"], pooling=model_config["pooling"])
    head_dropout = 0.0 if model_config["encoder"] == "cnn" else model_config["dropout"]
    heads = {task: _head(model_config["features"], model_config["head_hidden"], classes,
                         head_dropout)
             for task, classes in task_classes.items()}
    return MultiTaskModel(backbone, heads)
