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
# # 4. Multi-task learning: kindergarten and math in one model
#
# One **shared backbone** turns an input into features; one small **head** per task turns the
# features into that task's answer. Training alternates (or mixes) the tasks' batches, so the
# backbone is shaped by both. Whether that helps a task — **transfer** — is a measurement:
# the multi-task model's test score minus that of a model trained on the task alone.
#
# The flagship (`tinymtl run examples/kindergarten_math.yaml`) does this at full size; here
# the same config, shrunk to run in about a minute.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import tinymtl as tm
from tinymtl import datasets, mtl

out = tempfile.mkdtemp(prefix="tinymtl_notebook4_")

# %% [markdown]
# ## The two tasks
#
# Both read short strings character by character: *kindergarten* answers letter questions
# ("after C" → D: 26 classes), *math* small sums and differences ("7+5" → 12). The data is
# generated, deterministic in its seed.

# %%
tasks = {"kindergarten": {"generator": "kindergarten", "train_size": 4000, "test_size": 1000},
         "math": {"generator": "math", "train_size": 4000, "test_size": 1000}}
loaded = datasets.load_tasks(tasks, max_length=20, seed=0)
for name, data in loaded.items():
    shown = [f"{text!r} → {data.classes[y]}"
             for text, y in zip(datasets.decode(data.x_train[:4]), data.y_train[:4])]
    print(f"{name}: {len(data.classes)} classes; " + ", ".join(shown))

# %% [markdown]
# ## Shared backbone, private heads
#
# `mtl.build_model` makes the flagship's architecture: a character-convolution backbone and
# one Linear head per task. Counting parameters shows where the model's capacity is shared.

# %%
model_config = {"encoder": "conv", "embedding_dim": 32, "channels": [64, 64], "kernel_size": 3,
                "pooling": "flatten+max", "features": 384, "head_hidden": 0}
config = {"name": "kg_math", "seed": 0, "data": {"seed": 0, "max_length": 20},
          "tasks": tasks, "model": model_config,
          "training": {"schedule": "alternating", "steps": 600, "batch_size": 64,
                       "optimizer": "adam", "lr": 0.003, "lr_schedule": "cosine",
                       "warmup_steps": 50, "eval_every": 150},
          "baselines": "single_task", "linear_baseline": False}
from tinymtl.train.config import validate  # noqa: E402  (fills in every default)

model = mtl.build_model(validate(config)["model"], {t: len(d.classes) for t, d in loaded.items()},
                        loaded["math"].x_train.shape[1:], validate(config)["tasks"])
shared = sum(p.numel() for p in model.backbone.parameters())
heads = {t: sum(p.numel() for p in model.heads[t].parameters()) for t in loaded}
print(f"backbone {shared:,} parameters (shared); heads {heads}")
assert shared > 10 * max(heads.values())  # nearly all of the model is shared

# %% [markdown]
# ## Alternating, mixed, and each task alone
#
# `tinymtl.run` trains a config end to end and returns its summary (also written to
# `summary.json`). `schedule: alternating` gives every step to one task in turn (so each task
# gets 300 of the 600 steps); `mixed` samples the task of each step. With
# `baselines: single_task` the run also trains each task alone for the steps that task got
# here: the reference transfer is measured against.

# %%
summaries = {}
for schedule in ("alternating", "mixed"):
    run_config = dict(config, name=schedule,
                      training=dict(config["training"], schedule=schedule),
                      baselines="single_task" if schedule == "alternating" else "none")
    summaries[schedule] = tm.run(run_config, f"{out}/{schedule}", progress=False)

alternating = summaries["alternating"]["tasks"]
for task, result in alternating.items():
    print(f"{task:>12}: multi-task {100 * result['test_accuracy']:.1f} %, alone "
          f"{100 * result['baseline_accuracy']:.1f} %, transfer "
          f"{100 * result['transfer']:+.1f} points (chance {100 * result['chance_accuracy']:.1f} %)")
    # transfer is, by definition, the difference of the two test scores
    assert np.isclose(result["transfer"], result["test_accuracy"] - result["baseline_accuracy"])
    assert result["test_accuracy"] > 3 * result["chance_accuracy"]

# %%
figure, axis = plt.subplots(figsize=(6.5, 3.5))
names = list(alternating)
width = 0.27
for k, (label, values) in enumerate({
        "alone (same steps)": [alternating[t]["baseline_accuracy"] for t in names],
        "alternating": [alternating[t]["test_accuracy"] for t in names],
        "mixed": [summaries["mixed"]["tasks"][t]["test_accuracy"] for t in names]}.items()):
    axis.bar(np.arange(len(names)) + (k - 1) * width, 100 * np.array(values), width, label=label)
axis.set_xticks(range(len(names)), names)
axis.set(ylabel="test accuracy %", title="600 steps, 4,000 examples per task")
axis.legend()
plt.show()

# %% [markdown]
# ## A fairer comparison: the same tokens
#
# Steps are not exposure: a batch of long questions carries more characters than a batch of
# short ones, and a single-task run draws its batches in its own order. `baselines:
# token_controlled` trains each task alone until it has consumed exactly the **tokens**
# (characters) the multi-task run fed it, so that a gain that is only more exposure does not
# count as transfer. (At this size the numbers move by a few points from seed to seed;
# `tinymtl run CONFIG --seeds 5` says which differences are larger than that noise.)

# %%
controlled = tm.run(dict(config, name="tokens", baselines="token_controlled"),
                    f"{out}/tokens", progress=False)
for task, result in controlled["tasks"].items():
    print(f"{task:>12}: multi-task {100 * result['test_accuracy']:.1f} % on "
          f"{result['tokens']:,} characters; alone on {result['baseline_tokens']:,} characters "
          f"({result['baseline_steps']} steps) {100 * result['baseline_accuracy']:.1f} %")
    batch_characters = config["training"]["batch_size"] * 20  # (at most 20 characters each)
    assert abs(result["baseline_tokens"] - result["tokens"]) <= batch_characters
    # same seed, same config: the multi-task model is the alternating one above, bit for bit
    assert result["test_accuracy"] == alternating[task]["test_accuracy"]
