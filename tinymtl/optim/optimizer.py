"""``Optimizer``: turns the gradients in ``param.grad`` into parameter updates.

Parameters come in groups, each with its own hyper-parameters (e.g. a smaller learning rate for
a shared backbone, no weight decay for learned loss weights):

    Adam([{"params": backbone.parameters(), "lr": 1e-4}, {"params": heads.parameters()}], lr=1e-3)

``step()`` only reads ``.grad``: whoever combines gradients (PCGrad, GradNorm ...) does so before
calling it. ``state_dict()`` holds every moving average and step count, so a resumed run makes
the very same updates.
"""

from tinymtl.autograd import zero_grads
from tinymtl.backend import device_of, to_device, to_numpy


class Optimizer:
    state_arrays = 0  # parameter-sized arrays of state per parameter (Adam: m and v), for sizing
    state_keys = None  # what each parameter's state holds, checked on load (None: anything)

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> {name: value}
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        group["params"] = list(group["params"])
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        group.setdefault("initial_lr", group["lr"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("a parameter appears in more than one parameter group")
        self.param_groups.append(group)

    def parameters(self):
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def step(self):
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [{hyper-parameters, 'params': [index]}]},
        parameters numbered in order of appearance (PyTorch's layout); arrays as NumPy."""
        index, groups = 0, []
        state = {}
        for group in self.param_groups:
            entry = {k: v for k, v in group.items() if k != "params"}
            entry["params"] = list(range(index, index + len(group["params"])))
            for p in group["params"]:
                if id(p) in self.state:
                    state[index] = {k: (to_numpy(v).copy() if hasattr(v, "shape") else v)
                                    for k, v in self.state[id(p)].items()}
                index += 1
            groups.append(entry)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError("optimizer state_dict has a different parameter-group layout")
        params = list(self.parameters())
        states = {}  # checked whole before any of it is used
        for index, entry in state_dict["state"].items():
            if not 0 <= int(index) < len(params):
                raise ValueError(f"optimizer state for parameter {index}; the optimizer has "
                                 f"{len(params)} parameters")
            p = params[int(index)]
            values = {}
            for k, v in entry.items():
                if hasattr(v, "shape") and v.shape != ():
                    if tuple(v.shape) != p.shape or v.dtype != p.dtype:
                        raise ValueError(f"optimizer state {k} of parameter {index} is "
                                         f"{v.dtype}{list(v.shape)}, expected "
                                         f"{p.dtype}{list(p.shape)}")
                    v = to_device(v, device_of(p.data)).copy()
                values[k] = v
            if self.state_keys is not None and set(values) != set(self.state_keys):
                raise ValueError(f"optimizer state of parameter {index} has "
                                 f"{sorted(values)}, expected {sorted(self.state_keys)}")
            states[id(p)] = values
        self.state = states
        for group, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
