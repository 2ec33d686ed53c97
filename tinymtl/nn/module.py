"""``Module`` and ``Parameter``: the PyTorch containers for learnable state.

Assigning a Parameter or a Module as an attribute registers it, so ``parameters()`` finds every
weight of a model by walking the tree of submodules; ``state_dict()`` names them by their dotted
path ("backbone.0.weight") and ``load_state_dict()`` puts them back, checking every shape.
Buffers (``register_buffer``) are saved state that is not learned, e.g. batch-norm statistics.
"""

from collections import OrderedDict

from tinymtl.autograd import Tensor, zero_grads
from tinymtl.backend import device_of, to_device


class Parameter(Tensor):
    """A Tensor that is a module's learnable weight: it requires grad by default. Like every
    Tensor, floating data gets the default dtype (float32 unless float64 was asked for)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model: subclasses set attributes and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration --------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call Module.__init__() before assigning {name!r}")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Saved, non-learned state (an array), e.g. running means; part of ``state_dict``."""
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    def register_parameter(self, name, parameter):
        setattr(self, name, parameter)

    def add_module(self, name, module):
        setattr(self, name, module)

    # -- running ----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode=True):
        """Training behaviour (dropout active, batch statistics); ``eval()`` switches it off."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # -- walking the tree ---------------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        yield from self._modules.items()

    def children(self):
        yield from self._modules.values()

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) for every parameter, each shared one once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, parameter in module._parameters.items():
                if parameter is None or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self, recurse=True):
        for _, parameter in self.named_parameters(recurse=recurse):
            yield parameter

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def requires_grad_(self, requires_grad=True):
        """Switch gradient tracking of every parameter (``False`` freezes the module)."""
        for parameter in self.parameters():
            parameter.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule, children first (e.g. custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self):
        """Ordered {dotted name: array copy} of every parameter and buffer."""
        state = OrderedDict()
        for name, parameter in self.named_parameters():
            state[name] = parameter.data.copy()
        for name, buffer in self.named_buffers():
            state[name] = buffer.copy()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into this module's parameters and buffers, in place.

        Every shape must match (values are cast to the model's dtype, as in PyTorch; a
        checkpoint is not: ``train.checkpoint.restore_model``); with ``strict`` the names must
        match exactly too. Nothing is changed unless everything checks out.
        """
        targets = OrderedDict(
            [(name, p.data) for name, p in self.named_parameters()]
            + list(self.named_buffers()))
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state_dict.items():
            if name in targets and tuple(value.shape) != targets[name].shape:
                raise ValueError(f"load_state_dict: {name} has shape {tuple(value.shape)}, "
                                 f"the model expects {targets[name].shape}")
        for name, value in state_dict.items():
            if name in targets:
                target = targets[name]
                target[...] = to_device(value, device_of(target)).astype(target.dtype, copy=False)
        return missing, unexpected

    def to(self, device):
        """Move every parameter and buffer to ``device`` ('cpu' or 'cuda'), in place."""
        for module in self.modules():
            for parameter in module._parameters.values():
                if parameter is not None:
                    parameter.data = to_device(parameter.data, device)
                    if parameter.grad is not None:
                        parameter.grad = to_device(parameter.grad, device)
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = to_device(buffer, device)
        return self

    # -- printing -------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


