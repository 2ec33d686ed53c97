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
# # 2. Layers and optimizers
#
# A layer is a few tensor operations and some parameters; an optimizer is a rule that moves
# the parameters along their gradients. This notebook rebuilds `Linear` and `Conv2d` from
# primitives (the convolution as **im2col** + one matrix product, as tinymtl's kernels do it),
# shows why initialisation matters, and races SGD, momentum and Adam on one problem, then
# draws the learning-rate schedules the trainer uses.

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinymtl as tm
from tinymtl import nn, optim
from tinymtl.autograd.gradcheck import gradcheck
from tinymtl.nn import functional as F

tm.manual_seed(0)
generator = np.random.default_rng(0)

# %% [markdown]
# ## Linear = a matrix product and a bias
#
# `nn.Linear(in, out)` keeps `weight` (out, in) and `bias` (out,), PyTorch's layout, and
# computes y = x Wᵀ + b. Written with primitives, forward and gradients are the same.

# %%
layer = nn.Linear(3, 2)
x = tm.tensor(generator.normal(size=(4, 3)))
ours = x @ layer.weight.T + layer.bias
assert np.allclose(ours.numpy(), layer(x).numpy())
ours.sum().backward()
by_hand = layer.weight.grad.copy()
layer.zero_grad()
layer(x).sum().backward()
assert np.allclose(by_hand, layer.weight.grad)
print("Linear from primitives: same outputs, same weight gradient", layer.weight.grad.shape)

# %% [markdown]
# ## Conv2d = im2col + one matrix product
#
# A 3×3 convolution looks at every 3×3 patch of every channel. **im2col** copies each patch
# into a column — (C·KH·KW) rows, one column per output position — and the whole convolution
# becomes one matrix product of the filters (O, C·KH·KW) with those columns: fast, because
# matrix products are what BLAS does best. The backward pass is two more products and
# **col2im**, which adds each column back where its patch came from.

# %%
def im2col(images, kh, kw):
    n, c, h, w = images.shape
    oh, ow = h - kh + 1, w - kw + 1
    columns = np.empty((n, c * kh * kw, oh * ow), images.dtype)
    for i in range(oh):
        for j in range(ow):
            columns[:, :, i * ow + j] = images[:, :, i:i + kh, j:j + kw].reshape(n, -1)
    return columns, (oh, ow)


conv = nn.Conv2d(2, 4, kernel_size=3)
images = generator.normal(size=(2, 2, 6, 6)).astype(np.float32)
columns, (oh, ow) = im2col(images, 3, 3)
filters = conv.weight.numpy().reshape(4, -1)                  # (O, C·KH·KW)
by_im2col = (filters @ columns + conv.bias.numpy()[:, None]).reshape(2, 4, oh, ow)
assert np.allclose(by_im2col, conv(tm.tensor(images)).numpy(), atol=1e-5)
print("Conv2d by im2col:", columns.shape, "columns ->", by_im2col.shape, "outputs: equal")

# the real op's backward, checked against finite differences in float64
x64 = tm.tensor(generator.normal(size=(1, 2, 5, 5)), requires_grad=True, dtype=np.float64)
w64 = tm.tensor(generator.normal(size=(3, 2, 3, 3)), requires_grad=True, dtype=np.float64)
gradcheck(lambda a, b: F.conv2d(a, b, padding=1), [x64, w64])
print("conv2d gradcheck passed")

# %% [markdown]
# ## Initialisation: keep the signal's scale through depth
#
# Ten Linear + ReLU layers of width 256. With weights N(0, 1) each layer multiplies the
# activations' spread by about √(256/2): it explodes. PyTorch's (and tinymtl's) default for
# Linear, uniform with variance 1/(3·fan_in), shrinks it by √(1/6) a layer. He (Kaiming)
# initialisation, variance 2/fan_in, is made for ReLU: it keeps the spread.

# %%
def spread_through_depth(init, depth=10, width=256):
    h = tm.tensor(generator.normal(size=(512, width)))
    spreads = [float(h.numpy().std())]
    with tm.no_grad():
        for _ in range(depth):
            linear = nn.Linear(width, width)
            init(linear.weight)
            nn.init.zeros_(linear.bias)
            h = linear(h).relu()
            spreads.append(float(h.numpy().std()))
    return spreads


inits = {"N(0, 1)": lambda w: nn.init.normal_(w, 0.0, 1.0),
         "default (uniform, 1/(3 fan_in))": lambda w: None,
         "He / Kaiming normal (2/fan_in)": lambda w: nn.init.kaiming_normal_(
             w, nonlinearity="relu")}
spreads = {name: spread_through_depth(init) for name, init in inits.items()}
figure, axis = plt.subplots(figsize=(6, 3.5))
for name, values in spreads.items():
    axis.semilogy(values, marker="o", label=name)
axis.set(xlabel="layer", ylabel="std of the activations", title="signal through 10 ReLU layers")
axis.legend()
plt.show()
assert spreads["N(0, 1)"][-1] > 1e6 * spreads["N(0, 1)"][0]
assert spreads["default (uniform, 1/(3 fan_in))"][-1] < 1e-2
assert 0.2 < spreads["He / Kaiming normal (2/fan_in)"][-1] < 5

# %% [markdown]
# ## SGD, momentum and Adam on one problem
#
# An ill-conditioned bowl, f(w) = ½ (w₁² + 1000 w₂²): steep across, flat along. Plain SGD must
# keep its step below 2/1000 or it diverges across the valley, so it crawls along it;
# momentum (β = 0.9) accumulates the consistent direction; Adam divides each coordinate's
# step by its own gradient scale, so both directions move at the same pace.
#
# SGD with momentum: v ← βv + g, w ← w − ηv. Adam: m ← β₁m + (1−β₁)g, s ← β₂s + (1−β₂)g²,
# w ← w − η m̂ / (√ŝ + ε) with the bias-corrected m̂, ŝ.

# %%
def race(make_optimizer, steps=300):
    w = nn.Parameter(tm.tensor([5.0, 0.1]))
    optimizer = make_optimizer([w])
    losses = []
    for _ in range(steps):
        loss = 0.5 * (w[0] * w[0] + 1000 * w[1] * w[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


curves = {"SGD (η 0.0019)": race(lambda p: optim.SGD(p, lr=0.0019)),
          "SGD + momentum 0.9": race(lambda p: optim.SGD(p, lr=0.0019, momentum=0.9)),
          "Adam (η 0.1)": race(lambda p: optim.Adam(p, lr=0.1))}
figure, axis = plt.subplots(figsize=(6, 3.5))
for name, losses in curves.items():
    axis.semilogy(losses, label=name)
axis.set(xlabel="step", ylabel="f(w)", title="one ill-conditioned bowl")
axis.legend()
plt.show()
final = {name: losses[-1] for name, losses in curves.items()}
print(final)
assert final["SGD + momentum 0.9"] < final["SGD (η 0.0019)"] / 100
assert final["Adam (η 0.1)"] < final["SGD (η 0.0019)"] / 100

# %% [markdown]
# ## Learning-rate schedules
#
# The trainer's `lr_schedule` and `warmup_steps` are these `optim.lr_scheduler` classes
# (PyTorch's names): a schedule multiplies each step's learning rate.

# %%
def schedule(make, steps=100):
    optimizer = optim.SGD([nn.Parameter(tm.zeros(1))], lr=0.1)
    scheduler = make(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


lr = optim.lr_scheduler
rates = {"StepLR(30, γ 0.5)": schedule(lambda o: lr.StepLR(o, step_size=30, gamma=0.5)),
         "CosineAnnealingLR(100)": schedule(lambda o: lr.CosineAnnealingLR(o, T_max=100)),
         "LinearLR warm-up (10 steps)": schedule(
             lambda o: lr.LinearLR(o, start_factor=0.1, total_iters=10))}
figure, axis = plt.subplots(figsize=(6, 3.5))
for name, values in rates.items():
    axis.plot(values, label=name)
axis.set(xlabel="step", ylabel="learning rate")
axis.legend()
plt.show()
assert rates["StepLR(30, γ 0.5)"][30] == 0.05 and rates["StepLR(30, γ 0.5)"][60] == 0.025
assert abs(rates["CosineAnnealingLR(100)"][50] - 0.05) < 1e-12  # half way: half the rate
assert rates["LinearLR warm-up (10 steps)"][0] == 0.1 * 0.1 and rates[
    "LinearLR warm-up (10 steps)"][10] == 0.1
