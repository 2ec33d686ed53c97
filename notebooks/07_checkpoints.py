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
# # 7. Checkpoints and reproducibility
#
# A run's weights, optimizer state, random-number streams and progress are one HDF5 file,
# `checkpoint.h5`, readable with plain `h5py` (no pickle: nothing in it can run code). Three
# promises follow, each checked here: the file round-trips **bit for bit**; a run interrupted
# and resumed ends exactly where an uninterrupted one ends; and the same config and seed give
# the same weights on every run.

# %%
import pathlib
import shutil
import tempfile

import h5py
import numpy as np

import tinymtl as tm
from tinymtl.train import checkpoint

out = tempfile.mkdtemp(prefix="tinymtl_notebook7_")
config = {"name": "small", "seed": 0, "data": {"seed": 0},
          "tasks": {"kindergarten": {"generator": "kindergarten", "train_size": 2000,
                                     "test_size": 300},
                    "math": {"generator": "math", "train_size": 2000, "test_size": 300}},
          "model": {"encoder": "conv", "channels": [16, 16], "features": 64},
          "training": {"steps": 120, "batch_size": 32, "eval_every": 40,
                       "checkpoint_every": 40, "keep_checkpoints": 3},
          "baselines": "none", "linear_baseline": False}
summary = tm.run(config, f"{out}/a", progress=False)

# %% [markdown]
# ## The layout, opened with plain h5py

# %%
def show(name, item):
    if isinstance(item, h5py.Dataset):
        print(f"  {name}: {item.dtype} {item.shape}")
    elif name.count("/") < 1:
        print(f"{name}/")


with h5py.File(f"{out}/a/checkpoint.h5", "r") as f:
    print({key: f.attrs[key] for key in ("format", "format_version", "step")})
    f.visititems(show)
    saved = {name: f["model"][name][()] for name in f["model"]}

# %% [markdown]
# ## A bitwise round trip
#
# `checkpoint.load` gives the arrays back; loaded into a freshly built model (other random
# weights first), every parameter is the saved one, byte for byte.

# %%
from tinymtl import mtl  # noqa: E402
from tinymtl.train.config import validate  # noqa: E402

loaded = checkpoint.load(f"{out}/a/checkpoint.h5")
checked = validate(loaded["config"])
tm.manual_seed(123)  # other initial weights than the run's
fresh = mtl.build_model(checked["model"], {"kindergarten": 26, "math": 19}, (20,),
                        checked["tasks"])
fresh.load_state_dict(loaded["model_state"])
state = fresh.state_dict()
assert state.keys() == saved.keys()
for name, value in state.items():
    assert value.dtype == saved[name].dtype and value.tobytes() == saved[name].tobytes()
print(f"{len(state)} tensors loaded bit for bit; the run's own check said "
      f"{summary['roundtrip']}")

# %% [markdown]
# ## Resume after an interruption
#
# Pretend the run died after step 40: start a folder from the step-40 checkpoint it kept and
# resume. Everything that decides the next steps is in the file — weights, Adam's moments,
# the learning-rate schedule, each task's data order and every random stream — so the resumed
# run ends on exactly the weights of the uninterrupted one.

# %%
kept = sorted((pathlib.Path(out) / "a" / "checkpoints").glob("*.h5"))
print([p.name for p in kept])
middle = [p for p in kept if p.name.endswith("_step_000000040.h5")][0]
pathlib.Path(f"{out}/b").mkdir()
shutil.copy(middle, f"{out}/b/checkpoint.h5")
tm.run(config, f"{out}/b", resume=True, progress=False)
whole = checkpoint.load(f"{out}/a/checkpoint.h5")["model_state"]
resumed = checkpoint.load(f"{out}/b/checkpoint.h5")["model_state"]
assert all(whole[k].tobytes() == resumed[k].tobytes() for k in whole)
print("resumed from step 40: the same final weights, bit for bit")

# %% [markdown]
# ## The same seed, the same weights
#
# Every random draw comes from named, seeded streams (`tinymtl/backend/random.py`): the same
# config and seed reproduce the run exactly; another seed gives other weights.

# %%
tm.run(config, f"{out}/c", progress=False)
again = checkpoint.load(f"{out}/c/checkpoint.h5")["model_state"]
assert all(whole[k].tobytes() == again[k].tobytes() for k in whole)
tm.run(dict(config, seed=1), f"{out}/d", progress=False)
other = checkpoint.load(f"{out}/d/checkpoint.h5")["model_state"]
assert any(whole[k].tobytes() != other[k].tobytes() for k in whole)
print("seed 0 twice: identical weights; seed 1: different")
