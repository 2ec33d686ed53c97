"""The graph engine: batching, the segment ops (finite differences in float64, PyTorch's
index_add_ / scatter_reduce and PyG's softmax), GATConv against PyTorch Geometric's (same
weights: outputs, attention and every gradient), the relational variant and pooling."""

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn.functional as F
from tinymtl.autograd.gradcheck import gradcheck
from tinymtl.graph import (
    AttentionalAggregation, GATConv, Graph, RelationalGATConv, collate, global_add_pool,
    global_max_pool, global_mean_pool,
)

from conftest import DEVICES


def random_graph(rng, nodes, edges, features=3, edge_dim=None, relations=None):
    edge_index = rng.integers(0, nodes, (2, edges))
    return Graph(x=rng.normal(size=(nodes, features)).astype(np.float32), edge_index=edge_index,
                 edge_attr=None if edge_dim is None else
                 rng.normal(size=(edges, edge_dim)).astype(np.float32),
                 edge_type=None if relations is None else rng.integers(0, relations, edges),
                 y=np.array(nodes % 2))


def t64(array, grad=True):
    return tm.tensor(np.asarray(array, np.float64), dtype=np.float64, requires_grad=grad)


def in_dtype(dtype, build):
    """``build()`` with ``dtype`` the default: a layer made in float64 or float32."""
    with tm.default_dtype(dtype):
        return build()


# -- batching ------------------------------------------------------------------------------------
def test_collate_is_a_disjoint_union_that_splits_back():
    rng = np.random.default_rng(0)
    graphs = [random_graph(rng, n, e, edge_dim=2, relations=3) for n, e in [(4, 6), (1, 0),
                                                                             (5, 9)]]
    batch = collate(graphs)
    assert batch.num_graphs == 3 and batch.num_nodes == 10 and batch.num_edges == 15
    assert batch.ptr.tolist() == [0, 4, 5, 10]
    assert batch.batch.tolist() == [0] * 4 + [1] + [2] * 5
    assert (batch.edge_batch == np.repeat([0, 2], [6, 9])).all()  # no edge crosses graphs
    assert batch.y.tolist() == [0, 1, 1]
    for k, graph in enumerate(graphs):
        back = batch.graph(k)
        np.testing.assert_array_equal(back.x, graph.x)
        np.testing.assert_array_equal(back.edge_index, graph.edge_index)
        np.testing.assert_array_equal(back.edge_attr, graph.edge_attr)
        np.testing.assert_array_equal(back.edge_type, graph.edge_type)


def test_bad_graphs_are_refused():
    with pytest.raises(ValueError, match="refers to node 3 of a graph with 3 nodes"):
        Graph(x=np.zeros((3, 2)), edge_index=[[0, 1], [3, 2]])
    with pytest.raises(ValueError, match="edge_attr has 1 rows for 2 edges"):
        Graph(x=np.zeros((3, 2)), edge_index=[[0, 1], [1, 2]], edge_attr=np.zeros((1, 4)))
    with pytest.raises(ValueError, match="some graphs have edge_attr"):
        collate([Graph(x=np.zeros((2, 1)), edge_index=[[0], [1]], edge_attr=np.ones((1, 1))),
                 Graph(x=np.zeros((2, 1)), edge_index=[[0], [1]])])


# -- segment ops: finite differences ------------------------------------------------------------
INDEX = np.array([0, 2, 2, 1, 0, 2, 4, 4])  # segment 3 is empty


@pytest.mark.parametrize("op", ["segment_sum", "segment_mean", "segment_max"])
def test_segment_reductions_pass_gradcheck(op):
    rng = np.random.default_rng(1)
    gradcheck(lambda v: getattr(F, op)(v, INDEX, 5), [t64(rng.normal(size=(8, 2, 3)))])


def test_segment_softmax_passes_gradcheck_and_sums_to_one_per_segment():
    rng = np.random.default_rng(2)
    weights = t64(rng.normal(size=(8, 3)), False)
    gradcheck(lambda s: F.segment_softmax(s, INDEX, 5) * weights, [t64(rng.normal(size=(8, 3)))])
    alpha = F.segment_softmax(tm.tensor(rng.normal(size=(8, 3)) * 500), INDEX, 5).data
    assert np.isfinite(alpha).all()  # logits of ±1000: no overflow
    sums = np.zeros((5, 3))
    np.add.at(sums, INDEX, alpha)
    np.testing.assert_allclose(sums[[0, 1, 2, 4]], 1, rtol=1e-6)


def test_index_select_passes_gradcheck_with_repeats():
    rng = np.random.default_rng(3)
    gradcheck(lambda x: F.index_select(x, INDEX), [t64(rng.normal(size=(5, 2, 2)))])


# -- segment ops: PyTorch ------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch", reason="torch (the bench extra) is not installed")


def test_segment_ops_match_torch_values_and_gradients():
    torch = _torch()
    rng = np.random.default_rng(4)
    values = rng.normal(size=(8, 3))
    grad = rng.normal(size=(5, 3))
    index = torch.tensor(INDEX)
    cases = {
        "segment_sum": lambda v: torch.zeros(5, 3, dtype=v.dtype).index_add(0, index, v),
        "segment_mean": lambda v: torch.zeros(5, 3, dtype=v.dtype).scatter_reduce(
            0, index[:, None].expand(8, 3), v, "mean", include_self=False),
        "segment_max": lambda v: torch.zeros(5, 3, dtype=v.dtype).scatter_reduce(
            0, index[:, None].expand(8, 3), v, "amax", include_self=False),
    }
    for name, theirs in cases.items():
        ours = t64(values)
        out = getattr(F, name)(ours, INDEX, 5)
        (out * t64(grad, False)).sum().backward()
        reference = torch.tensor(values, requires_grad=True)
        expected = theirs(reference)
        (expected * torch.tensor(grad)).sum().backward()
        np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(ours.grad, reference.grad.numpy(), rtol=1e-12, err_msg=name)


def test_segment_softmax_matches_pyg():
    torch = _torch()
    utils = pytest.importorskip("torch_geometric.utils", reason="torch-geometric is not "
                                                                  "installed")
    rng = np.random.default_rng(5)
    scores, grad = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    ours = t64(scores)
    (F.segment_softmax(ours, INDEX, 5) * t64(grad, False)).sum().backward()
    reference = torch.tensor(scores, requires_grad=True)
    expected = utils.softmax(reference, torch.tensor(INDEX), num_nodes=5)
    (expected * torch.tensor(grad)).sum().backward()
    np.testing.assert_allclose(F.segment_softmax(t64(scores), INDEX, 5).data,
                               expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad, reference.grad.numpy(), rtol=1e-10)


# -- GATConv -------------------------------------------------------------------------------------
LAYERS = {
    "one head": dict(heads=1),
    "three heads, concat": dict(heads=3),
    "three heads, mean": dict(heads=3, concat=False),
    "edge features": dict(heads=2, edge_dim=4),
    "no self-loops, residual": dict(heads=2, add_self_loops=False, residual=True),
    "slope 0.1, no bias": dict(heads=2, negative_slope=0.1, bias=False),
}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_gatconv_passes_gradcheck(case):
    rng = np.random.default_rng(6)
    graph = random_graph(rng, 6, 14, edge_dim=LAYERS[case].get("edge_dim"))
    graph.edge_index[:, 0] = [2, 2]  # a self-loop in the input: removed, then one added
    layer = in_dtype(np.float64, lambda: GATConv(3, 2, **LAYERS[case]))
    edge_attr = None if graph.edge_attr is None else t64(graph.edge_attr)
    inputs = [t64(graph.x)] + ([edge_attr] if edge_attr is not None else [])
    gradcheck(lambda x, *e: layer(x, graph.edge_index, *e), inputs)
    gradcheck(lambda w, a: _with(layer, w, a)(t64(graph.x, False), graph.edge_index,
                                               edge_attr),
              [layer.lin.weight, layer.att_src])


def _with(layer, weight, attention):
    layer.lin.weight, layer.att_src = weight, attention
    return layer


def pyg_twin(layer, torch, dtype):
    """PyG's GATConv in ``dtype`` with ``layer``'s weights."""
    from torch_geometric.nn import GATConv as PyGGATConv

    twin = PyGGATConv(layer.in_channels, layer.out_channels, heads=layer.heads,
                      concat=layer.concat, negative_slope=layer.negative_slope,
                      add_self_loops=layer.add_self_loops, edge_dim=layer.edge_dim,
                      bias=layer.bias is not None, residual=layer.res is not None).to(dtype)
    mine = dict(layer.named_parameters())
    names = {"lin.weight": "lin.weight", "att_src": "att_src", "att_dst": "att_dst",
             "lin_edge.weight": "lin_edge.weight", "att_edge": "att_edge", "bias": "bias",
             "res.weight": "res.weight"}
    with torch.no_grad():
        for theirs, parameter in twin.named_parameters():
            parameter.copy_(torch.from_numpy(np.asarray(mine[names[theirs]].data)))
    return twin


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_gatconv_equals_pyg(case, dtype, rtol):
    torch = _torch()
    pytest.importorskip("torch_geometric", reason="torch-geometric is not installed")
    rng = np.random.default_rng(7)
    graph = collate([random_graph(rng, n, e, features=5, edge_dim=LAYERS[case].get("edge_dim"))
                     for n, e in [(7, 20), (3, 2), (9, 30)]])
    layer = in_dtype(dtype, lambda: GATConv(5, 4, **LAYERS[case]))
    twin = pyg_twin(layer, torch, torch.float64 if dtype == np.float64 else torch.float32)
    x = tm.tensor(graph.x.astype(dtype), dtype=dtype, requires_grad=True)
    edge_attr = None if graph.edge_attr is None else \
        tm.tensor(graph.edge_attr.astype(dtype), dtype=dtype, requires_grad=True)
    out, (edges, alpha) = layer(x, graph.edge_index, edge_attr, return_attention_weights=True)
    grad = rng.normal(size=out.shape).astype(dtype)
    (out * tm.tensor(grad, dtype=dtype)).sum().backward()

    tx = torch.tensor(graph.x.astype(dtype), requires_grad=True)
    tedge = None if edge_attr is None else torch.tensor(graph.edge_attr.astype(dtype),
                                                        requires_grad=True)
    tout, (tedges, talpha) = twin(tx, torch.tensor(graph.edge_index), tedge,
                                  return_attention_weights=True)
    (tout * torch.tensor(grad)).sum().backward()
    atol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_array_equal(edges, tedges.numpy())
    np.testing.assert_allclose(alpha.data, talpha.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=rtol, atol=atol)
    if edge_attr is not None:
        np.testing.assert_allclose(edge_attr.grad, tedge.grad.numpy(), rtol=rtol, atol=atol)
    theirs = dict(twin.named_parameters())
    for name, parameter in layer.named_parameters():
        np.testing.assert_allclose(parameter.grad, theirs[name].grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=name)


def test_attention_dropout_only_in_training_and_outputs_are_deterministic():
    rng = np.random.default_rng(8)
    graph = random_graph(rng, 8, 30)
    layer = GATConv(3, 4, heads=2, dropout=0.5)
    layer.eval()
    first = layer(tm.tensor(graph.x), graph.edge_index).data
    np.testing.assert_array_equal(first, layer(tm.tensor(graph.x), graph.edge_index).data)
    layer.train()
    _, (_, alpha) = layer(tm.tensor(graph.x), graph.edge_index, return_attention_weights=True)
    assert (alpha.data == 0).any()  # some attention dropped


# -- the relational variant and pooling ------------------------------------------------------------
def test_relational_gat_passes_gradcheck_and_relations_compete_in_one_softmax():
    rng = np.random.default_rng(9)
    graph = random_graph(rng, 6, 16, relations=3)
    layer = in_dtype(np.float64, lambda: RelationalGATConv(3, 2, num_relations=3, heads=2))
    gradcheck(lambda x: layer(x, graph.edge_index, graph.edge_type), [t64(graph.x)])
    gradcheck(lambda w: _with_weight(layer, w)(t64(graph.x, False), graph.edge_index,
                                                graph.edge_type), [layer.weight])
    _, (edges, alpha) = layer(t64(graph.x), graph.edge_index, graph.edge_type,
                              return_attention_weights=True)
    sums = np.zeros((6, 2))
    np.add.at(sums, edges[1], alpha.data)
    np.testing.assert_allclose(sums, 1, rtol=1e-12)  # over all relations at once
    with pytest.raises(ValueError, match="expected relations 0..2"):
        layer(t64(graph.x), graph.edge_index, graph.edge_type + 1)


def _with_weight(layer, weight):
    layer.weight = weight
    return layer


def test_pooling_passes_gradcheck_and_matches_pyg():
    torch = _torch()
    rng = np.random.default_rng(10)
    batch = np.array([0, 0, 0, 1, 2, 2])
    x = rng.normal(size=(6, 4))
    for pool in (global_add_pool, global_mean_pool, global_max_pool):
        gradcheck(lambda v: pool(v, batch), [t64(x)])
    gate = in_dtype(np.float64, lambda: tm.nn.Linear(4, 1))
    attention = AttentionalAggregation(gate)
    gradcheck(lambda v: attention(v, batch), [t64(x)])
    pooled, weights = attention(t64(x), batch, return_attention_weights=True)
    assert pooled.shape == (3, 4) and weights.shape == (6, 1)
    nn_pool = pytest.importorskip("torch_geometric.nn", reason="torch-geometric is not "
                                                                "installed")
    tbatch = torch.tensor(batch)
    for ours, theirs in [(global_add_pool, nn_pool.global_add_pool),
                         (global_mean_pool, nn_pool.global_mean_pool),
                         (global_max_pool, nn_pool.global_max_pool)]:
        np.testing.assert_allclose(ours(t64(x), batch).data,
                                   theirs(torch.tensor(x), tbatch).numpy(), rtol=1e-12)
    twin_gate = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        twin_gate.weight.copy_(torch.tensor(gate.weight.data))
        twin_gate.bias.copy_(torch.tensor(gate.bias.data))
    expected = nn_pool.aggr.AttentionalAggregation(twin_gate)(torch.tensor(x), tbatch)
    np.testing.assert_allclose(pooled.data, expected.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_gatconv_on_every_device_equals_the_cpu(device):
    """The same layer on ``device`` (its segment kernels: Numba on CPU, CuPy on GPU) gives the
    CPU's outputs and input gradients."""
    from tinymtl.backend import to_device, to_numpy

    rng = np.random.default_rng(11)
    graph = collate([random_graph(rng, 9, 25, edge_dim=2) for _ in range(3)])
    layer = GATConv(3, 4, heads=2, edge_dim=2)
    x = tm.tensor(graph.x, requires_grad=True)
    out = layer(x, graph.edge_index, graph.edge_attr)
    out.sum().backward()
    moved = GATConv(3, 4, heads=2, edge_dim=2)
    moved.load_state_dict(layer.state_dict())
    moved.to(device)
    xd = tm.tensor(to_device(graph.x, device), requires_grad=True)
    outd = moved(xd, graph.edge_index, to_device(graph.edge_attr, device))
    outd.sum().backward()
    np.testing.assert_allclose(to_numpy(outd.data), out.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(xd.grad), x.grad, rtol=1e-5, atol=1e-6)


# -- graph sets, the encoder, the motifs workload ---------------------------------------------------
def test_a_graph_set_indexes_like_an_array_and_collates_like_collate():
    from tinymtl.graph import GraphSet

    rng = np.random.default_rng(12)
    graphs = [random_graph(rng, n, e, relations=2) for n, e in [(3, 4), (1, 0), (5, 7), (2, 1)]]
    graphs = [Graph(x=g.x, edge_index=g.edge_index, edge_type=g.edge_type) for g in graphs]
    stored = GraphSet.from_graphs(graphs)
    assert len(stored) == 4 and stored.shape == (4, 3) and stored.dtype == np.float32
    for index in (np.array([2, 0]), np.array([True, False, True, True]), slice(1, 3)):
        batch, expected = stored[index].collate(), collate(
            [graphs[k] for k in np.arange(4)[index]])
        for name in ("x", "edge_index", "edge_type", "batch", "ptr"):
            np.testing.assert_array_equal(getattr(batch, name), getattr(expected, name))
    joined = GraphSet.concatenate([stored[np.array([3])], stored[np.array([0, 2])]])
    np.testing.assert_array_equal(joined.collate().x, collate([graphs[3], graphs[0],
                                                               graphs[2]]).x)


@pytest.mark.parametrize("pooling", ["sum", "mean", "max", "attention"])
def test_the_graph_encoder_passes_gradcheck(pooling):
    from tinymtl.graph import GraphEncoder

    rng = np.random.default_rng(13)
    batch = collate([random_graph(rng, n, e) for n, e in [(4, 6), (3, 3)]])
    encoder = in_dtype(np.float64, lambda: GraphEncoder(3, (4, 4), heads=2, pooling=pooling))
    weight = encoder.layers[0].lin.weight
    gradcheck(lambda w: _with_first_weight(encoder, w)(_as64(batch)), [weight])
    assert encoder(_as64(batch)).shape == (2, 4)
    attention = encoder.attention(_as64(batch))
    loops_removed = int((batch.edge_index[0] != batch.edge_index[1]).sum())
    assert len(attention) == 2 and attention[0][1].shape == (loops_removed + 7, 2)  # + 7 loops


def _as64(graph):
    graph.x = graph.x.astype(np.float64)
    return graph


def _with_first_weight(encoder, weight):
    encoder.layers[0].lin.weight = weight
    return encoder


def test_motif_graphs_are_deterministic_and_their_tasks_share_them():
    from tinymtl.datasets import load_tasks
    from tinymtl.datasets.motifs import MOTIFS

    specs = {"m": {"generator": "motifs", "target": "motif", "train_size": 60, "test_size": 20},
             "c": {"generator": "motifs", "target": "count", "train_size": 60, "test_size": 20}}
    first, again = load_tasks(specs, seed=1, valid_fraction=0.25), load_tasks(specs, seed=1,
                                                                              valid_fraction=0.25)
    assert first["m"].x_train is first["c"].x_train  # one set of graphs, two labels
    np.testing.assert_array_equal(first["m"].x_train.x, again["m"].x_train.x)
    assert (len(first["m"].y_train), len(first["m"].y_valid)) == (45, 15)
    assert first["m"].classes == list(MOTIFS) and first["c"].kind == "regression"
    counts = [int((g.x[:, 0] == 1).sum()) for g in
              (first["c"].x_test[np.array([k])].collate() for k in range(20))]
    assert counts == first["c"].y_test.astype(int).tolist()  # count = type-0 nodes
    other = load_tasks(specs, seed=2)["m"]
    assert not np.array_equal(other.x_train.x[:10], first["m"].x_train.x[:10])
