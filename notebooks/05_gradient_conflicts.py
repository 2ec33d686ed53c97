# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Gradient conflicts: PCGrad, MGDA, CAGrad and learned loss weights
#
# Two tasks share a backbone; each pulls the shared weights along its own gradient g_i. When
# g₁ · g₂ < 0 (cosine below zero) the tasks **conflict**: a step along their sum helps one
# and hurts the other. Gradient-surgery methods change how the g_i are combined; loss
# weighting changes how much each task counts. This notebook draws each method's answer on
# the same two gradients, checks the property that defines it, then measures conflicts in a
# real run and lets uncertainty weighting learn two noise levels it was never told.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import tinymtl as tm
from tinymtl import mtl, nn, optim
from tinymtl.mtl.surgery import cagrad, mgda, min_norm_weights, pcgrad

g1, g2 = np.array([1.0, 0.25]), np.array([-0.7, 0.9])
cosine = g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2))
print(f"cosine(g1, g2) = {cosine:.3f}: {'conflict' if cosine < 0 else 'no conflict'}")
assert cosine < 0

# %% [markdown]
# ## PCGrad (Yu et al. 2020): project away the conflicting component
#
# If g₁ · g₂ < 0, g₁ loses its component along g₂: g₁ᴾᶜ = g₁ − (g₁ · g₂ / ‖g₂‖²) g₂, and the same
# for g₂ against the *original* g₁. The projected g₁ᴾᶜ is orthogonal to g₂: following it no
# longer undoes task 2's progress (to first order).

# %%
g1_pc = g1 - (g1 @ g2) / (g2 @ g2) * g2
g2_pc = g2 - (g2 @ g1) / (g1 @ g1) * g1
assert abs(g1_pc @ g2) < 1e-12 and abs(g2_pc @ g1) < 1e-12       # orthogonal, as promised
combined = pcgrad([g1, g2], np.random.default_rng(0))              # tinymtl's implementation
assert np.allclose(combined, g1_pc + g2_pc)
print("PCGrad: g1_pc · g2 = 0, g2_pc · g1 = 0; sum", combined)

# %% [markdown]
# ## MGDA (Sener & Koltun 2018): the smallest vector in the convex hull
#
# α = argmin over the simplex of ‖α₁g₁ + α₂g₂‖². The min-norm point d of the hull has
# d · g_i ≥ ‖d‖² for every task: a step along it decreases every loss (Désidéri's
# multiple-gradient descent) — a Pareto-stationary point is where d = 0.

# %%
alpha = min_norm_weights([g1, g2])
d_mgda = alpha @ np.stack([g1, g2])
for g in (g1, g2):
    assert g @ d_mgda >= d_mgda @ d_mgda - 1e-12
assert np.allclose(mgda([g1, g2]), 2 * d_mgda)  # (tinymtl scales it by T, like the sum)
print(f"MGDA: α = {alpha.round(3)}, d · g1 = {g1 @ d_mgda:.3f}, d · g2 = {g2 @ d_mgda:.3f} "
      f"≥ ‖d‖² = {d_mgda @ d_mgda:.3f}")

# %% [markdown]
# ## CAGrad (Liu et al. 2021): the best worst case near the average
#
# Stay within a ball of radius c‖g₀‖ around the average g₀ = (g₁ + g₂)/2 and, inside it,
# maximise the worst task's improvement min_i g_i · d. tinymtl solves the inner problem
# exactly; here a brute-force search over the ball's boundary confirms nothing does better.

# %%
c = 0.5
g0 = (g1 + g2) / 2
d_ca = cagrad([g1, g2], c) * (1 + c * c) / 2   # (undo the T / (1 + c²) scaling)
assert np.isclose(np.linalg.norm(d_ca - g0), c * np.linalg.norm(g0))  # on the ball's boundary
angles = np.linspace(0, 2 * np.pi, 20001)
ring = g0 + c * np.linalg.norm(g0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
worst = np.minimum(ring @ g1, ring @ g2)
print(f"CAGrad: worst-task improvement {min(g1 @ d_ca, g2 @ d_ca):.5f}; best on a 20,001-point "
      f"ring {worst.max():.5f}; the plain average's {min(g1 @ g0, g2 @ g0):.5f}")
assert min(g1 @ d_ca, g2 @ d_ca) >= worst.max() - 1e-6
assert min(g1 @ d_ca, g2 @ d_ca) > min(g1 @ g0, g2 @ g0)

# %%
figure, axis = plt.subplots(figsize=(6, 6))
arrows = {"g1": (g1, "tab:blue"), "g2": (g2, "tab:orange"),
          "sum": (g1 + g2, "gray"), "PCGrad": (g1_pc + g2_pc, "tab:green"),
          "MGDA (×2)": (2 * d_mgda, "tab:red"), "CAGrad (×2)": (2 * d_ca, "tab:purple")}
for label, (vector, colour) in arrows.items():
    axis.annotate("", vector, (0, 0), arrowprops={"arrowstyle": "->", "color": colour, "lw": 2})
    axis.text(*(vector * 1.08), label, color=colour)
axis.add_patch(plt.Circle(2 * g0, 2 * c * np.linalg.norm(g0), fill=False, ls="--",
                          color="tab:purple"))
axis.axhline(0, color="black", lw=0.5)
axis.axvline(0, color="black", lw=0.5)
axis.set(xlim=(-1.2, 1.4), ylim=(-0.5, 1.6), aspect="equal",
         title="two conflicting gradients and each method's direction")
plt.show()

# %% [markdown]
# ## Conflicts in a real run
#
# Kindergarten and math share a backbone (notebook 4). With both tasks in every batch
# (`schedule: mixed`) and `gradients: pcgrad`, the trainer computes each task's gradient on
# the shared weights at every step and counts how often they conflict and their mean cosine
# (`summary.json`, `gradient_conflicts.png`).

# %%
config = {"name": "conflicts", "seed": 0, "data": {"seed": 0},
          "tasks": {"kindergarten": {"generator": "kindergarten", "train_size": 3000,
                                     "test_size": 500},
                    "math": {"generator": "math", "train_size": 3000, "test_size": 500}},
          "model": {"encoder": "conv", "channels": [32, 32], "features": 128,
                    "pooling": "flatten+max"},
          "training": {"schedule": "mixed", "steps": 200, "batch_size": 64, "lr": 0.003,
                       "weighting": "equal", "gradients": "pcgrad", "eval_every": 100},
          "baselines": "none", "linear_baseline": False}
summary = tm.run(config, tempfile.mkdtemp(prefix="tinymtl_notebook5_"), progress=False)
pair = summary["gradients"]["pairs"]["kindergarten|math"]
print(f"over {pair['steps']} steps: the tasks' gradients conflicted in "
      f"{100 * pair['conflict_frequency']:.0f} % of them, mean cosine {pair['mean_cosine']:+.3f}")
assert pair["steps"] == 200 and 0 <= pair["conflict_frequency"] <= 1
assert -1 <= pair["mean_cosine"] <= 1

# %% [markdown]
# ## Uncertainty weighting learns the noise (Kendall et al. 2018)
#
# Two regression targets of one input, one clean (noise σ₁ = 0.1) and one noisy (σ₂ = 1.0).
# Uncertainty weighting gives each task a learned log-variance s_t and minimises
# ½ e^{−s_t} MSE_t + ½ s_t; for fixed predictions the optimum is e^{s_t} = MSE_t, the task's
# residual variance. So after training, √e^{s_t} should be close to the true σ_t — which the
# model was never told.

# %%
tm.manual_seed(0)
data = np.random.default_rng(1)
x = data.normal(size=(2000, 4)).astype(np.float32)
true_sigma = {"clean": 0.1, "noisy": 1.0}
targets = {"clean": x @ np.array([1.0, -2.0, 0.5, 0.0]) + data.normal(0, 0.1, 2000),
           "noisy": x @ np.array([0.0, 1.0, 1.0, -1.0]) + data.normal(0, 1.0, 2000)}
backbone = nn.Linear(4, 16)
heads = {t: nn.Linear(16, 1) for t in targets}
weighting = mtl.Uncertainty().bind(list(targets), {t: "regression" for t in targets})
parameters = list(backbone.parameters()) + [p for h in heads.values() for p in h.parameters()]
optimizer = optim.Adam(parameters + weighting.parameters(), lr=0.02)
history = {t: [] for t in targets}
inputs = tm.tensor(x)
for step in range(1500):
    features = backbone(inputs)
    losses = {t: ((heads[t](features)[:, 0] - tm.tensor(y.astype(np.float32))) ** 2).mean()
              for t, y in targets.items()}
    optimizer.zero_grad()
    weighting.combine(losses).backward()
    optimizer.step()
    for t in targets:
        history[t].append(float(np.exp(0.5 * weighting.log_vars[t].data[0])))

figure, axis = plt.subplots(figsize=(6, 3.5))
for t, values in history.items():
    line, = axis.plot(values, label=f"learned σ ({t})")
    axis.axhline(true_sigma[t], color=line.get_color(), ls="--", label=f"true σ ({t})")
axis.set(xlabel="step", ylabel="σ = exp(s/2)", yscale="log")
axis.legend()
plt.show()
for t in targets:
    print(f"{t}: learned σ {history[t][-1]:.3f}, true σ {true_sigma[t]}")
    assert abs(history[t][-1] / true_sigma[t] - 1) < 0.2
