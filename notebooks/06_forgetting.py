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
# # 6. Forgetting, and how to resist it
#
# Train on kindergarten, then on math, with one shared backbone and a head per task (the
# *task-incremental* scenario: at test time we know which head to ask). While learning math,
# nothing protects what the backbone learned for kindergarten: **catastrophic forgetting**.
# The accuracy matrix R[i, j] — task j's test accuracy after stage i — shows it; EWC and replay
# are two answers, measured here on the same sequence.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import tinymtl as tm
from tinymtl.train import checkpoint

out = tempfile.mkdtemp(prefix="tinymtl_notebook6_")
base = {"seed": 0, "data": {"seed": 0},
        "tasks": {"kindergarten": {"generator": "kindergarten", "train_size": 3000,
                                   "test_size": 500},
                  "math": {"generator": "math", "train_size": 3000, "test_size": 500}},
        "model": {"encoder": "conv", "channels": [32, 32], "features": 128,
                  "pooling": "flatten+max"},
        "training": {"steps": 800, "batch_size": 64, "lr": 0.003, "eval_every": 400},
        "baselines": "none", "linear_baseline": False}


def sequence(name, **method):
    """Kindergarten then math, with a continual method and its options."""
    config = dict(base, name=name, continual={"stages": ["kindergarten", "math"], **method})
    return tm.run(config, f"{out}/{name}", progress=False)


# %% [markdown]
# ## Fine-tuning: the accuracy matrix
#
# Row i: after stage i; column j: task j. The diagonal is each task just learned; below it,
# what is left of kindergarten once math has been learned.

# %%
finetune = sequence("finetune", method="finetune")
R = np.array(finetune["continual"]["matrix"])
print("R =\n", (100 * R).round(1), "\n(rows: after kindergarten, after math; columns: "
      "kindergarten, math)")
forgotten = R[0, 0] - R[1, 0]
print(f"kindergarten: {100 * R[0, 0]:.1f} % after learning it, {100 * R[1, 0]:.1f} % after math "
      f"(−{100 * forgotten:.1f} points); backward transfer BWT = "
      f"{100 * finetune['continual']['backward_transfer']:+.1f} points")
assert np.isclose(finetune["continual"]["backward_transfer"], R[1, 0] - R[0, 0])  # its definition

# %% [markdown]
# ## EWC: protect what mattered for kindergarten
#
# Elastic weight consolidation (Kirkpatrick et al. 2017) adds (λ/2) Σ_k F_k (θ_k − θ*_k)² to
# math's loss: θ* are the weights after kindergarten, F_k the diagonal **Fisher information**
# of kindergarten's likelihood — the mean squared per-example gradient of log p(y | x) — which
# says how much the loss would change if θ_k moved. Weights kindergarten relied on are held
# near θ*; the others are free for math.
#
# λ trades stability (keeping kindergarten) against plasticity (learning math). It is chosen
# here as it must be: by the average accuracy over both tasks on the **validation** split,
# never on test.

# %%
lambdas = [1e1, 1e2, 1e3, 1e4, 1e6]
sweep = {lam: sequence(f"ewc_{lam:g}", method="ewc", ewc_lambda=lam, fisher_samples=300)
         for lam in lambdas}
valid = [sweep[lam]["continual"]["valid"]["average_accuracy"] for lam in lambdas]
kept_by_lambda = [np.array(sweep[lam]["continual"]["matrix"])[1, 0] for lam in lambdas]
math_by_lambda = [np.array(sweep[lam]["continual"]["matrix"])[1, 1] for lam in lambdas]
chosen = lambdas[int(np.argmax(valid))]
figure, axis = plt.subplots(figsize=(6, 3.5))
axis.semilogx(lambdas, 100 * np.array(kept_by_lambda), marker="o", label="kindergarten (kept)")
axis.semilogx(lambdas, 100 * np.array(math_by_lambda), marker="o", label="math (new)")
axis.semilogx(lambdas, 100 * np.array(valid), ls=":", marker="s", label="validation average")
axis.axvline(chosen, color="gray", ls="--")
axis.set(xlabel="λ", ylabel="accuracy % after both stages", title=f"chosen on valid: λ = {chosen:g}")
axis.legend()
plt.show()
print(f"λ chosen on validation: {chosen:g}")
# stability against plasticity: the strongest pull keeps more of kindergarten, learns less math
assert kept_by_lambda[-1] >= kept_by_lambda[0] and math_by_lambda[-1] <= math_by_lambda[0]

# %% [markdown]
# ## Fine-tuning, EWC and replay on the same sequence
#
# Replay keeps a small reservoir of kindergarten examples and mixes them into math's batches.

# %%
ewc = sweep[chosen]
replay = sequence("replay", method="replay", replay_size=500)
results = {"fine-tuning": finetune, f"EWC (λ {chosen:g})": ewc, "replay (500 examples)": replay}
kept = {}
for name, summary in results.items():
    matrix = np.array(summary["continual"]["matrix"])
    kept[name] = matrix[1, 0]
    print(f"{name:>22}: kindergarten kept {100 * matrix[1, 0]:.1f} % (of {100 * matrix[0, 0]:.1f}),"
          f" math {100 * matrix[1, 1]:.1f} %")
assert kept[f"EWC (λ {chosen:g})"] > kept["fine-tuning"]
assert kept["replay (500 examples)"] > kept["fine-tuning"]

# %% [markdown]
# ## Which weights does the Fisher protect?
#
# The EWC run's checkpoint keeps its anchor: the Fisher and θ* of kindergarten. Per
# parameter tensor, the mean Fisher: kindergarten's own head and the backbone carry it; the
# math head carries **none** — kindergarten's loss does not depend on it, so EWC leaves it
# entirely free.

# %%
state = checkpoint.load(f"{out}/ewc_{chosen:g}/checkpoint.h5")["plugin_states"]["ewc"]
fisher = state["anchors"][0]["fisher"]
means = {name: float(np.mean(values)) for name, values in fisher.items()}
figure, axis = plt.subplots(figsize=(7, 3.5))
axis.barh(list(means), list(means.values()))
axis.set(xscale="symlog", xlabel="mean Fisher (kindergarten)", title="what EWC protects")
plt.show()
head = [n for n in fisher if n.startswith("heads.math")]
assert head and all(np.all(fisher[n] == 0) for n in head)
assert all(np.all(values >= 0) for values in fisher.values())
assert any(means[n] > 0 for n in fisher if n.startswith("backbone"))
