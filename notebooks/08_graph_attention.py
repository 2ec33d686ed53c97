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
# # 8. Graph attention
#
# A molecule is a graph: atoms are nodes, bonds edges. A graph neural network updates every
# node from its neighbours (**message passing**); graph attention (Veličković et al. 2018)
# lets each node decide how much each neighbour's message counts. This notebook computes one
# attention layer by hand and checks it against `GATConv`, draws what a layer attends to on a
# real molecule, and shows GraphCL's four augmentations (needs RDKit: the `chem` extra).

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinymtl as tm
from tinymtl.datasets import molecules
from tinymtl.graph import augment
from tinymtl.graph.conv import GATConv
from tinymtl.nn import functional as F

tm.manual_seed(0)

# %% [markdown]
# ## Message passing by hand
#
# Four nodes, edges j → i. For one head: h_j = W x_j; a score e_ij = LeakyReLU(a_src · h_j +
# a_dst · h_i) for each edge into i (and i's own loop); α_ij = softmax of the scores over i's
# incoming edges — a **segment softmax**, one softmax per receiving node; x'_i = Σ_j α_ij h_j
# (+ bias).

# %%
x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
edge_index = np.array([[0, 1, 2, 3, 1], [1, 2, 1, 1, 0]])  # sources, then targets
layer = GATConv(3, 2, heads=1)

W = layer.lin.weight.numpy()               # (2, 3)
a_src = layer.att_src.numpy()[0, 0]
a_dst = layer.att_dst.numpy()[0, 0]
h = x @ W.T
loops = np.arange(4)
source = np.concatenate([edge_index[0], loops])     # every node also attends to itself
target = np.concatenate([edge_index[1], loops])
scores = h[source] @ a_src + h[target] @ a_dst
scores = np.where(scores > 0, scores, 0.2 * scores)  # LeakyReLU, slope 0.2
alpha = np.zeros_like(scores)
for i in range(4):  # softmax over i's incoming edges
    into = target == i
    alpha[into] = np.exp(scores[into] - scores[into].max()) / np.exp(
        scores[into] - scores[into].max()).sum()
by_hand = np.zeros((4, 2), np.float32)
np.add.at(by_hand, target, alpha[:, None] * h[source])
by_hand += layer.bias.numpy()

out, (used_edges, attention) = layer(tm.tensor(x), edge_index, return_attention_weights=True)
assert np.allclose(out.numpy(), by_hand, atol=1e-5)
for i in range(4):
    assert np.isclose(attention.numpy()[used_edges[1] == i].sum(), 1.0)
print("GATConv = message passing by hand; each node's attention sums to 1:")
for (j, i), a in zip(used_edges.T, attention.numpy()[:, 0]):
    print(f"  {j} → {i}: α = {a:.3f}")

# %% [markdown]
# The segment softmax is the op that makes this fast on thousands of graphs at once
# (`F.segment_softmax`, a Numba kernel with its own backward: notebook 3).

# %%
assert np.allclose(F.segment_softmax(tm.tensor(scores), target, 4).numpy(), alpha, atol=1e-6)

# %% [markdown]
# ## Attention on a molecule
#
# Aspirin, featurised as tinymtl's molecules are (36 atom features, 6 bond features). An
# untrained 4-head layer already has preferences — its random attention vectors — and the
# attention each atom *receives*, summed over heads and its neighbours' edges, can be drawn on
# the molecule. (Whether trained attention explains a prediction is a question
# `docs/graphs.md` measures, with gradient × input as the baseline.)

# %%
aspirin = "CC(=O)Oc1ccccc1C(=O)O"
graphs = molecules.graphs_from_smiles([aspirin])
graph = graphs.collate()
print(f"{graph.num_nodes} atoms, {graph.num_edges} directed bond edges, features {graph.x.shape}")
attention_layer = GATConv(graph.x.shape[1], 8, heads=4)
_, (edges, weights) = attention_layer(tm.tensor(graph.x), graph.edge_index,
                                       return_attention_weights=True)
received = np.zeros(graph.num_nodes)
np.add.at(received, edges[0], weights.numpy().sum(1))  # attention paid *to* each source atom
try:
    from tinymtl.report.molecules import draw

    image = draw(aspirin, received - received.mean(), positions=np.arange(graph.num_nodes))
    plt.figure(figsize=(4, 4))
    plt.imshow(image)
    plt.axis("off")
    plt.title("attention each atom receives (red: more)")
    plt.show()
except ImportError:  # drawing needs RDKit's Cairo renderer
    print(received.round(2))
assert np.isclose(weights.numpy().sum(), 4 * graph.num_nodes)  # 4 heads, each node's sum is 1

# %% [markdown]
# ## GraphCL's augmentations
#
# GraphCL (You et al. 2020) pretrains an encoder without labels by making two random views of
# each graph and asking the encoder to recognise which views belong together. The views come
# from four augmentations, each on a share `ratio` of the graph: **drop nodes**, **perturb
# edges** (drop some, add as many random ones), **mask attributes** (zero some nodes'
# features), **subgraph** (keep what a random walk reaches). Each keeps every graph non-empty.

# %%
rng = np.random.default_rng(0)
print(f"{'view':<16} {'nodes':>5} {'edges':>5} {'zeroed rows':>11}")
for name in ("drop_nodes", "perturb_edges", "mask_attributes", "subgraph"):
    view = augment.augment(name, graph, rng, ratio=0.2)
    zeroed = int((np.abs(view.x).sum(1) == 0).sum())
    print(f"{name:<16} {view.num_nodes:>5} {view.num_edges:>5} {zeroed:>11}")
    assert view.num_nodes > 0 and view.num_graphs == 1
    if name == "drop_nodes":
        assert view.num_nodes == graph.num_nodes - int(0.2 * graph.num_nodes)
    if name == "mask_attributes":
        assert zeroed == int(0.2 * graph.num_nodes) and view.num_edges == graph.num_edges
    if name == "perturb_edges":
        assert view.num_nodes == graph.num_nodes
