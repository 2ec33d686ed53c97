"""GraphCL's augmentations and NT-Xent loss (``graph.augment``): each view keeps every graph,
changes what its ratio says and stays a valid batch; the loss equals its definition, passes a
float64 gradient check, and matches a torch computation where torch is installed."""

import numpy as np
import pytest

import tinymtl as tm
from tinymtl.autograd.gradcheck import gradcheck
from tinymtl.graph import Graph, collate
from tinymtl.graph.augment import (
    AUGMENTATIONS, augment, contrastive_accuracy, drop_nodes, mask_attributes, nt_xent_loss,
    perturb_edges, subgraph,
)


def ring(n, features=3, offset=0):
    """A ring of n nodes, edges both ways, node k's features k + offset."""
    a = np.arange(n)
    edge_index = np.concatenate([np.stack([a, (a + 1) % n]), np.stack([(a + 1) % n, a])], 1)
    x = np.tile(np.arange(n, dtype=np.float32)[:, None] + offset, (1, features))
    return Graph(x=x, edge_index=edge_index, edge_type=np.zeros(2 * n, dtype=np.int64))


BATCH = collate([ring(10, offset=1), ring(5, offset=100), ring(1, offset=200)])  # no zero row


def valid(view, graphs=3):
    assert view.num_graphs == graphs and (np.diff(view.ptr) >= 1).all()  # no graph emptied
    assert view.edge_index.size == 0 or view.edge_index.max() < view.num_nodes
    edge_graph = view.batch[view.edge_index]  # no edge crosses two graphs
    assert (edge_graph[0] == edge_graph[1]).all()
    assert len(view.edge_type) == view.num_edges


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_keeps_a_valid_batch_and_is_seeded(name):
    first = augment(name, BATCH, np.random.default_rng(0))
    again = augment(name, BATCH, np.random.default_rng(0))
    valid(first)
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.edge_index, again.edge_index)


def test_node_dropping_and_subgraphs_keep_the_share_the_ratio_says():
    dropped = drop_nodes(BATCH, np.random.default_rng(1), ratio=0.2)
    assert np.diff(dropped.ptr).tolist() == [8, 4, 1]  # ⌊0.2 n⌋ dropped, never all
    kept_values = set(dropped.x[:8, 0].tolist())
    assert len(kept_values) == 8 and kept_values <= set(range(1, 11))  # graph 0's own nodes
    sub = subgraph(BATCH, np.random.default_rng(2), ratio=0.2)
    assert np.diff(sub.ptr).tolist() == [8, 4, 1]
    # on a ring a walk's first 8 nodes are a path: 7 edges both ways among them
    assert (sub.edge_batch == 0).sum() == 14


def test_edge_perturbation_and_masking_change_what_they_say():
    perturbed = perturb_edges(BATCH, np.random.default_rng(3), ratio=0.2)
    assert perturbed.num_edges == BATCH.num_edges
    before = {tuple(e) for e in BATCH.edge_index.T}
    after = [tuple(e) for e in perturbed.edge_index.T]
    assert sum(e in before for e in after) >= BATCH.num_edges - 2 * int(0.2 * 20) - 2
    masked = mask_attributes(BATCH, np.random.default_rng(4), ratio=0.2)
    zero_rows = (masked.x == 0).all(1)
    assert zero_rows.sum() == 2 + 1  # ⌊0.2·10⌋ + ⌊0.2·5⌋ (+ 0 of the lone node)
    np.testing.assert_array_equal(masked.edge_index, BATCH.edge_index)


def nt_xent_by_hand(z, zp, tau):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    zp = zp / np.linalg.norm(zp, axis=1, keepdims=True)
    s = z @ zp.T / tau
    losses = [-s[n, n] + np.log(sum(np.exp(s[n, m]) for m in range(len(z)) if m != n))
              for n in range(len(z))]
    return np.mean(losses)


def test_nt_xent_is_graphcl_eq_3_and_passes_gradcheck():
    rng = np.random.default_rng(5)
    z, zp = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    as64 = (lambda a: tm.tensor(a, dtype=np.float64, requires_grad=True))
    assert nt_xent_loss(as64(z), as64(zp), 0.5).item() == pytest.approx(
        nt_xent_by_hand(z, zp, 0.5), rel=1e-12)
    gradcheck(lambda a, b: nt_xent_loss(a, b, 0.3), [as64(z), as64(zp)])
    assert contrastive_accuracy(as64(z), as64(z)) == 1.0  # identical views: each finds itself


def test_nt_xent_matches_torch():
    torch = pytest.importorskip("torch", reason="torch (the bench extra) is not installed")
    rng = np.random.default_rng(6)
    z, zp = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    a = tm.tensor(z, dtype=np.float64, requires_grad=True)
    nt_xent_loss(a, tm.tensor(zp, dtype=np.float64), 0.2).backward()
    ta = torch.tensor(z, requires_grad=True)
    s = torch.nn.functional.normalize(ta, dim=1) @ torch.nn.functional.normalize(
        torch.tensor(zp), dim=1).T / 0.2
    masked = s.masked_fill(torch.eye(5, dtype=torch.bool), float("-inf"))
    loss = (torch.logsumexp(masked, 1) - s.diagonal()).mean()
    loss.backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-10)
