"""Gradient accumulation: k micro-batches, one update, the same as one k-times-larger batch.

With per-micro-batch mean losses L_1..L_k of equal size, the big batch's mean loss is
(1/k) Σ L_j, so backpropagating L_j / k for each micro-batch sums to exactly its gradient.
"""


class GradientAccumulator:
    """``acc = GradientAccumulator(optimizer, steps=4)``; per micro-batch: ``acc.backward(loss)``
    — it scales the loss, and steps (then zeroes) the optimizer every ``steps`` calls."""

    def __init__(self, optimizer, steps):
        if steps < 1:
            raise ValueError(f"accumulation steps must be >= 1, got {steps}")
        self.optimizer, self.steps, self.count = optimizer, int(steps), 0

    def backward(self, loss):
        """Backpropagate ``loss / steps``; returns True when this call made an update."""
        (loss / self.steps).backward()
        self.count += 1
        if self.count < self.steps:
            return False
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.count = 0
        return True

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = int(state["count"])
