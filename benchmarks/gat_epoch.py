"""One training epoch of a graph attention network over RDKit's 5,000 NCI molecules, tinymtl
against PyTorch Geometric's ``GATConv`` model of the same shape, in the same process on CPU.

    python benchmarks/gat_epoch.py            # a table (needs `tinymtl data fetch molecules`
    python benchmarks/gat_epoch.py --json     #  and the bench extra: torch, torch-geometric)

The model: three GAT layers (64 wide: 4 heads of 16, concatenated, ReLU, self-loops), sum
pooling, a linear head predicting each molecule's Crippen log P (MSE), Adam lr 1e-3, float32,
batches of 128 molecules in one seeded order, the same for both. Each framework collates its
own batches the way its users do (``GraphSet.collate`` / PyG's ``Batch.from_data_list``) and
that is timed as part of the epoch. The two alternate, epoch by epoch, and the median epoch of
each is reported with the ratio tinymtl / PyG (below 1: tinymtl is faster).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

BATCH, HIDDEN, HEADS, LAYERS = 128, 64, 4, 3


def load():
    from tinymtl.datasets import molecules

    nci = molecules.load_set("nci")
    return nci["graphs"], nci["logp"].astype(np.float32)


def batches(n, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return [order[k:k + BATCH] for k in range(0, n, BATCH)]


def tinymtl_epoch_fn(graphs, targets):
    import tinymtl.nn.functional as F
    from tinymtl import nn
    from tinymtl.autograd import Tensor
    from tinymtl.backend import manual_seed
    from tinymtl.graph import GraphEncoder
    from tinymtl.optim import Adam

    manual_seed(0)
    encoder = GraphEncoder(graphs.shape[1], (HIDDEN,) * LAYERS, heads=HEADS, pooling="sum")
    head = nn.Linear(HIDDEN, 1)
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimizer = Adam(parameters, lr=1e-3)

    def epoch(order):
        for rows in order:
            graph = graphs[rows].collate()
            loss = F.mse_loss(head(encoder(graph)).reshape(-1), Tensor(targets[rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return float(loss.item())
    return epoch


def pyg_epoch_fn(graphs, targets):
    import torch
    from torch_geometric.data import Batch, Data
    from torch_geometric.nn import GATConv, global_add_pool

    torch.manual_seed(0)
    data = []
    for k in range(len(graphs)):
        one = graphs[np.array([k])]
        data.append(Data(x=torch.from_numpy(one.x), edge_index=torch.from_numpy(one.edge_index),
                         y=torch.tensor([targets[k]])))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            widths = [graphs.shape[1]] + [HIDDEN] * LAYERS
            self.layers = torch.nn.ModuleList(
                [GATConv(a, b // HEADS, heads=HEADS) for a, b in zip(widths, widths[1:])])
            self.head = torch.nn.Linear(HIDDEN, 1)

        def forward(self, batch):
            x = batch.x
            for layer in self.layers:
                x = torch.relu(layer(x, batch.edge_index))
            return self.head(global_add_pool(x, batch.batch)).reshape(-1)

    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch(order):
        for rows in order:
            batch = Batch.from_data_list([data[k] for k in rows])
            loss = torch.nn.functional.mse_loss(model(batch), batch.y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return float(loss.item())
    return epoch


def measure(rounds=5):
    import torch

    graphs, targets = load()
    order = batches(len(graphs))
    ours, theirs = tinymtl_epoch_fn(graphs, targets), pyg_epoch_fn(graphs, targets)
    ours(order[:3]), theirs(order[:3])  # warm-up: Numba's compilation, PyG's first calls
    times = {"tinymtl": [], "pyg": []}
    for _ in range(rounds):
        for name, epoch in (("tinymtl", ours), ("pyg", theirs)):
            started = time.perf_counter()
            epoch(order)
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"molecules": len(graphs), "batches": len(order), "batch_size": BATCH,
            "torch_threads": torch.get_num_threads(),
            "tinymtl_epoch_s": round(medians["tinymtl"], 3),
            "pyg_epoch_s": round(medians["pyg"], 3),
            "ratio": round(medians["tinymtl"] / medians["pyg"], 3),
            "epochs_timed": rounds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"GAT epoch over {result['molecules']:,} NCI molecules ({result['batches']} batches "
          f"of {BATCH}), median of {args.rounds}:")
    print(f"  tinymtl {result['tinymtl_epoch_s']:.3f} s   PyG {result['pyg_epoch_s']:.3f} s   "
          f"ratio tinymtl/PyG {result['ratio']:.2f}  (torch threads {result['torch_threads']})")


if __name__ == "__main__":
    main()
