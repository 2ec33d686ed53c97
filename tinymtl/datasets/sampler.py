"""Mini-batches drawn in shuffled passes (epochs) over a dataset, with exactly savable state."""

import numpy as np


class EpochSampler:
    """``next(k)`` returns the next k example indices of a random permutation, reshuffling when a
    pass ends. State = the generator, the current permutation and the position in it."""

    def __init__(self, size, generator):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.generator = size, generator
        self.order = generator.permutation(size)
        self.position, self.epoch = 0, 0

    def next(self, count):
        parts = []
        while count:
            take = min(count, self.size - self.position)
            parts.append(self.order[self.position:self.position + take])
            self.position += take
            count -= take
            if self.position == self.size:
                self.order = self.generator.permutation(self.size)
                self.position, self.epoch = 0, self.epoch + 1
        return np.concatenate(parts)

    def state_dict(self):
        return {"position": self.position, "epoch": self.epoch, "order": self.order,
                "generator": self.generator.state_dict()}

    def load_state_dict(self, state):
        order = np.asarray(state["order"])
        if len(order) != self.size:
            raise ValueError(f"sampler state is for {len(order)} examples, not {self.size}")
        if order.dtype.kind not in "iu" or not np.array_equal(np.sort(order),
                                                             np.arange(self.size)):
            raise ValueError(f"sampler state: its order is not a permutation of "
                             f"{self.size} examples")
        if not 0 <= int(state["position"]) <= self.size:
            raise ValueError(f"sampler state: position {state['position']} is outside "
                             f"0..{self.size}")
        self.generator.load_state_dict(state["generator"])
        self.order = np.asarray(order, dtype=np.int64)
        self.position, self.epoch = int(state["position"]), int(state["epoch"])


