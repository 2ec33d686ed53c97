"""Gradient surgery: combine the tasks' gradients on the *shared* parameters into one update.

Each task's (weighted) loss is differentiated alone, giving g_i on the shared parameters
(flattened into one vector); heads keep their own gradients. Then:

sum      g = Σ_i g_i                                   (what backward() on Σ_i L_i gives)
pcgrad   Yu et al. (2020). g_i^PC starts at g_i; for each i, over j ≠ i in a fresh random
         order (seeded): if g_i^PC · g_j < 0 then g_i^PC −= (g_i^PC · g_j / ‖g_j‖²) g_j, always
         against the *original* g_j. g = Σ_i g_i^PC.
cagrad   Liu et al. (2021), conflict-averse. g_0 = mean_i g_i; w on the simplex minimises
         F(w) = g_w · g_0 + √φ ‖g_w‖ with g_w = Σ_i w_i g_i and φ = c² ‖g_0‖²;
         d = g_0 + (√φ / ‖g_w‖) g_w, and g = T · d / (1 + c²)   (T: the sum's scale).
mgda     Sener & Koltun (2018), multiple-gradient descent: the min-norm point of the convex hull,
         α = argmin_{α ∈ simplex} ‖Σ_i α_i g_i‖²; g = T · Σ_i α_i g_i.
         For two tasks α_1 = clip(((g_2 − g_1) · g_2) / ‖g_1 − g_2‖², 0, 1).
mgda_ub  Sener & Koltun (2018), MGDA's "upper bound": the same min-norm problem on the
         gradients with respect to the shared *representation* z = backbone(x) instead of the
         shared parameters, ∇_z L_i (each costs only task i's head). Since
         ‖Σ α_i ∇_θ L_i‖ ≤ ‖∂z/∂θ‖ · ‖Σ α_i ∇_z L_i‖, minimising the right-hand norm minimises
         an upper bound of MGDA's objective. Then one backward through the backbone,
         z.backward(T · Σ_i α_i ∇_z L_i), instead of one per task: the speed-up.

CAGrad's and MGDA's problems over the simplex are solved exactly, face by face, with an
optimality certificate (``mtl.simplex``). Surgery needs one batch's gradients: it refuses
gradient accumulation. Heads (and other task-private parameters) always get their own task's
gradient. Each method
is a ``Plugin`` (``mtl.plugin``) that owns the backward pass; ``sum`` is plain ``backward()``.

Statistics per task pair (i, j), over steps: the conflict frequency (share of steps with
g_i · g_j < 0) and the mean cosine similarity — written to metrics and drawn as a heatmap
(for mgda_ub, of the gradients with respect to z).
"""

import itertools

import numpy as np

from tinymtl.autograd import grad
from tinymtl.backend import to_numpy
from tinymtl.mtl import simplex
from tinymtl.mtl.plugin import Plugin, register
from tinymtl.options import Float


def pcgrad(grads, rng):
    """PCGrad's combined gradient from a list of flat gradients; ``rng`` orders the j's."""
    projected = [g.copy() for g in grads]
    for i, g_i in enumerate(projected):
        others = [j for j in range(len(grads)) if j != i]
        for j in rng.permutation(len(others)):
            g_j = grads[others[j]]
            dot = float(g_i @ g_j)
            if dot < 0:
                g_i -= dot / float(g_j @ g_j) * g_j
    return np.sum(projected, axis=0)


def cagrad(grads, c=0.5):
    """CAGrad's update (scaled by T to match the sum of task gradients), with the inner problem
    solved exactly (``simplex.conflict_averse_weights``)."""
    G = np.stack(grads).astype(np.float64)
    T = len(grads)
    R = simplex.reduced(grads)
    g0 = R.mean(axis=1)                          # g_0 in the reduced coordinates
    sqrt_phi = c * float(np.linalg.norm(g0))     # √φ = c ‖g_0‖
    w = simplex.conflict_averse_weights(R, g0, sqrt_phi)
    norm = float(np.linalg.norm(R @ w))          # ‖g_w‖
    d = G.mean(axis=0) + (sqrt_phi / norm) * (w @ G) if norm > 0 else G.mean(axis=0)
    return (T * d / (1 + c * c)).astype(grads[0].dtype)


def min_norm_weights(grads):
    """α = argmin_{α ∈ simplex} ‖Σ α_i g_i‖²: the closed form for two tasks, else exactly, face
    by face (``simplex.min_norm_point``; Sener & Koltun use Frank-Wolfe, which only approaches
    it)."""
    T = len(grads)
    if T == 2:
        G = np.stack(grads).astype(np.float64)
        gram = G @ G.T
        denominator = gram[0, 0] + gram[1, 1] - 2 * gram[0, 1]
        a = 0.5 if denominator <= 0 else np.clip((gram[1, 1] - gram[0, 1]) / denominator, 0, 1)
        return np.array([a, 1 - a])
    return simplex.min_norm_point(simplex.reduced(grads))


def mgda(grads):
    alpha = min_norm_weights(grads)
    return (len(grads) * (alpha @ np.stack(grads).astype(np.float64))).astype(grads[0].dtype)


@register
class Sum(Plugin):
    """g = Σ_i g_i: the trainer's own ``backward()`` of the summed loss (the default)."""

    name = "sum"
    kind = "gradients"


class GradientSurgery(Plugin):
    """Per-task gradients on the shared parameters, combined by ``combine``; keeps the per-pair
    conflict statistics. Its random order (PCGrad) and statistics are in ``state_dict()``."""

    kind = "gradients"
    owns_backward = True
    needs_all_tasks = True
    # surgery of each micro-batch's gradients, summed, is not surgery of the batch's gradient:
    # with training.accumulate > 1 the config is refused rather than silently different
    accumulates = False

    def memory_copies(self, tasks):
        return len(tasks) + 1  # each task's gradient on the shared weights, and their combination

    def setup(self, trainer):
        # its stream follows the T epoch samplers' (backend.random.STREAMS)
        self.bind(sorted(trainer.tasks), trainer.generator("gradient_surgery",
                                                           offset=len(trainer.tasks)))

    def bind(self, tasks, generator):
        """Combine the gradients of ``tasks``, drawing random orders from ``generator``."""
        self.tasks, self.rng = list(tasks), generator
        self.pairs = {f"{a}|{b}": {"steps": 0, "conflicts": 0, "cosine_sum": 0.0}
                      for a, b in itertools.combinations(sorted(self.tasks), 2)}
        return self

    def backward(self, trainer, terms, batch):
        shared = trainer.model.shared_parameters()
        if len(terms) < 2 or not shared:
            return False
        self.surgery_backward(terms, shared, {t: trainer.task_parameters(t) for t in terms})
        return True

    def surgery_backward(self, terms, shared, private):
        """Set ``.grad`` of every parameter from per-task loss ``terms`` {task: Tensor}:
        ``shared`` parameters get the combined gradient, ``private[task]`` parameters (heads,
        learned loss weights) their own task's gradient."""
        tasks = list(terms)
        flat = []
        for task in tasks:
            own = private.get(task, [])
            grads = grad(terms[task], shared + own, retain_graph=True, allow_unused=True)
            flat.append(np.concatenate([
                np.zeros(p.data.size, p.data.dtype) if g is None else to_numpy(g).ravel()
                for p, g in zip(shared, grads[:len(shared)])]))
            _accumulate(own, grads[len(shared):])
        self._record(tasks, flat)
        combined = self.combine(flat)
        start = 0
        for p in shared:
            piece = combined[start:start + p.data.size].reshape(p.data.shape)
            start += p.data.size
            piece = p.xp.asarray(piece.astype(p.data.dtype, copy=False))
            p.grad = piece if p.grad is None else p.grad + piece

    def combine(self, flat):
        """The combined gradient from the list of flat per-task gradients."""
        raise NotImplementedError

    def _record(self, tasks, flat):
        for (a, g_a), (b, g_b) in itertools.combinations(zip(tasks, flat), 2):
            key = "|".join(sorted((a, b)))
            dot = float(g_a.astype(np.float64) @ g_b)
            norms = float(np.linalg.norm(g_a) * np.linalg.norm(g_b))
            entry = self.pairs[key]
            entry["steps"] += 1
            entry["conflicts"] += int(dot < 0)
            entry["cosine_sum"] += dot / norms if norms > 0 else 0.0

    def statistics(self):
        """{pair: {conflict_frequency, mean_cosine, steps}} over every step so far."""
        return {pair: {"conflict_frequency": e["conflicts"] / e["steps"] if e["steps"] else None,
                       "mean_cosine": e["cosine_sum"] / e["steps"] if e["steps"] else None,
                       "steps": e["steps"]} for pair, e in self.pairs.items()}

    def on_train_log(self, trainer, row):
        row["gradients"] = self.statistics()

    def state_dict(self):
        return {"rng": self.rng.state_dict(), "pairs": self.pairs}

    def load_state_dict(self, state):
        self.rng.load_state_dict(state["rng"])
        self.pairs = {k: dict(v) for k, v in state["pairs"].items()}


def _accumulate(parameters, gradients):
    for p, g in zip(parameters, gradients):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


@register
class PCGrad(GradientSurgery):
    """Yu et al. (2020): project away the components of the gradients that conflict."""

    name = "pcgrad"

    def combine(self, flat):
        return pcgrad(flat, self.rng)


@register
class CAGrad(GradientSurgery):
    """Liu et al. (2021): the conflict-averse direction near the mean gradient."""

    name = "cagrad"
    OPTIONS = {"c": Float(default=0.5, low=0.0,
                          help="how far from the mean gradient the direction may go")}
    ALIASES = {"cagrad_c": "c"}

    def combine(self, flat):
        return cagrad(flat, self.c)


@register
class MGDA(GradientSurgery):
    """Sener & Koltun (2018): the min-norm point of the gradients' convex hull."""

    name = "mgda"

    def combine(self, flat):
        return mgda(flat)


@register
class MGDAUB(GradientSurgery):
    """Sener & Koltun (2018), MGDA-UB: MGDA on the gradients w.r.t. the shared features.

    α from ∇_z L_i (z = backbone(x)), then one backward through the backbone (module
    docstring)."""

    name = "mgda_ub"

    def backward(self, trainer, terms, batch):
        shared = trainer.model.shared_parameters()
        if len(terms) < 2 or not shared or batch is None or not batch.features.requires_grad:
            return False
        z = batch.features
        tasks = list(terms)
        flat = []
        for task in tasks:
            own = trainer.task_parameters(task)
            grads = grad(terms[task], [z] + own, retain_graph=True, allow_unused=True)
            flat.append(np.zeros(z.data.size, z.data.dtype) if grads[0] is None
                        else to_numpy(grads[0]).ravel())
            _accumulate(own, grads[1:])
        self._record(tasks, flat)
        combined = mgda(flat).reshape(z.data.shape)
        z.backward(z.xp.asarray(combined.astype(z.data.dtype, copy=False)))
        return True


__all__ = ["pcgrad", "cagrad", "mgda", "min_norm_weights", "GradientSurgery", "Sum", "PCGrad",
           "CAGrad", "MGDA", "MGDAUB"]
