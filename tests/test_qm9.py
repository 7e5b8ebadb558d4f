"""QM9 (paper Sec. 3.2): the embedded molecules and their provenance, the stacked graph network
against a plain one-run network and against PyTorch Geometric's ``NNConv``, and the trainer
(ensemble = solo runs; K = 1 equals a plain AdamW loop on PyG's flat batches)."""

import numpy as np
import pytest
import torch

from omnigrok.config import RunConfig, TaskSpec
from omnigrok.data import qm9
from omnigrok.models import forward
from omnigrok.models.graphnet import GraphNetReference, GraphNetSpec, Graphs, init_graphnet
from omnigrok.norms import scale_
from omnigrok.task import get, make_task
from omnigrok.tasks.qm9 import qm9_run
from omnigrok.train import _Batches, train_ensemble

TINY = GraphNetSpec(channels=(8, 4), edge_hidden=6, readout=5)


def tiny(**overrides) -> RunConfig:
    base = dict(
        task=TaskSpec("qm9", n_train=20, n_test=10),
        model=TINY,
        steps=6,
        batch_size=8,
        dtype="float64",
        n_log=3,
    )
    return qm9_run(**{**base, **overrides})


def flat(molecules: qm9.Molecules, rows) -> tuple[torch.Tensor, ...]:
    """PyG's batch layout of ``rows``: atoms stacked, bonds with global atom numbers, each
    atom's molecule (``x, edge_index, edge_attr, batch``)."""
    xs, edges, attrs, batch, offset = [], [], [], [], 0
    for j, i in enumerate(rows):
        a0, a1 = molecules.node_offset[i], molecules.node_offset[i + 1]
        e0, e1 = molecules.edge_offset[i], molecules.edge_offset[i + 1]
        xs.append(molecules.node_x[a0:a1])
        edges.append(molecules.edges[e0:e1] + offset)
        attrs.append(np.eye(len(qm9.BOND_TYPES))[molecules.edge_type[e0:e1]])
        batch += [j] * (a1 - a0)
        offset += a1 - a0
    return (
        torch.tensor(np.concatenate(xs), dtype=torch.float64),
        torch.tensor(np.concatenate(edges).T),
        torch.tensor(np.concatenate(attrs), dtype=torch.float64),
        torch.tensor(batch),
    )


def test_the_embedded_molecules_are_qm9s_first():
    """CH4, NH3, H2O first, with QM9's polarizabilities; 3000 molecules, the unconverged
    ones absent (indices up to 3056)."""
    m = qm9.load_molecules(qm9.EMBEDDED_MOLECULES)
    assert len(m) == 3000 and m.index[0] == 1 and m.index[-1] == 3056
    assert list(m.smiles[:3]) == ["C", "N", "O"]
    np.testing.assert_allclose(m.y[:3], [13.21, 9.46, 6.31])
    methane = m.node_x[: m.node_offset[1]]
    assert methane.tolist()[0] == [0, 1, 0, 0, 0, 6, 0, 0, 0, 1, 4]  # sp3 carbon, 4 H
    assert methane[1:, 0].tolist() == [1, 1, 1, 1]  # four hydrogens
    assert m.edge_offset[1] == 8  # four C-H bonds, both directions
    assert np.all(np.diff(m.node_offset) <= 29)  # QM9's largest molecules have 29 atoms


def test_features_recompute_from_the_stored_smiles():
    """The derivation is checkable: RDKit on each stored SMILES gives the stored graph."""
    pytest.importorskip("rdkit")
    m = qm9.load_molecules(300)
    for i in range(len(m)):
        n_atoms = m.node_offset[i + 1] - m.node_offset[i]
        x, edges, types = qm9.featurize(str(m.smiles[i]), int(n_atoms))
        one = m.first(i + 1)
        np.testing.assert_array_equal(x, one.node_x[m.node_offset[i] :])
        np.testing.assert_array_equal(edges, one.edges[m.edge_offset[i] :])
        np.testing.assert_array_equal(types, one.edge_type[m.edge_offset[i] :])


def test_featurize_refuses_a_molecule_it_reads_differently():
    pytest.importorskip("rdkit")
    with pytest.raises(qm9.Qm9DataError, match="5 atoms with H, QM9 says 4"):
        qm9.featurize("C", 4)
    with pytest.raises(qm9.Qm9DataError, match="cannot read"):
        qm9.featurize("C(((", 5)


def test_a_corrupt_embedded_file_is_refused(monkeypatch):
    monkeypatch.setattr(qm9, "EMBEDDED_SHA256", "0" * 64)
    with pytest.raises(qm9.Qm9DataError, match="fail their sha256"):
        qm9.load_molecules(100)


def test_more_molecules_need_the_extra(monkeypatch):
    monkeypatch.setattr(qm9, "qm9pack_data", lambda: None)
    with pytest.raises(qm9.Qm9DataError, match=r"pip install 'omnigrok\[qm9\]'"):
        qm9.load_molecules(5000)


def test_padding_is_masked():
    m = qm9.load_molecules(10)
    p = m.padded(np.array([0, 6]))
    assert p["nodes"].shape[1] == max(np.diff(m.node_offset)[[0, 6]])
    assert p["node_mask"][0].sum() == 5 and p["edge_mask"][0].sum() == 8
    assert not p["nodes"][0, 5:].any() and not p["edge_type"][0, 8:].any()


def test_split_and_bad_specs():
    task = get("qm9")
    _, train, test = task.split(TaskSpec("qm9", n_train=50, n_test=50))
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    _, other, _ = task.split(TaskSpec("qm9", n_train=50, n_test=50, data_seed=1))
    assert not np.array_equal(train, other)
    with pytest.raises(ValueError, match="n_test must be at least 1"):
        qm9_run(task=TaskSpec("qm9", n_train=50, n_test=0))
    with pytest.raises(ValueError, match="node_features, edge_features"):
        qm9_run(model=GraphNetSpec(node_features=10))
    with pytest.raises(ValueError, match="loss must be one of 'mse'"):
        qm9_run(loss="ce")


@pytest.mark.parametrize("per_run", [False, True])
def test_stacked_network_equals_the_plain_one(per_run):
    """Outputs and every parameter's gradient, run by run, float64."""
    m = qm9.load_molecules(40)
    rows = np.array([[3, 17, 25, 39], [0, 1, 2, 38], [5, 5, 9, 30]])
    params = init_graphnet(TINY, [0, 1, 2], dtype=torch.float64)
    for p in params.values():
        p.requires_grad_(True)
    padded = {k: torch.as_tensor(v) for k, v in m.padded(np.arange(40)).items()}
    graphs = Graphs(**{k: v.double() if v.is_floating_point() else v for k, v in padded.items()})
    out = forward(TINY, params, graphs[torch.as_tensor(rows)] if per_run else graphs[rows[0]])
    out.pow(2).sum().backward()
    for run in range(3):
        ref = GraphNetReference(TINY).double().load_run(params, run)
        mine = rows[run] if per_run else rows[0]
        expected = ref(*flat(m, mine), n_graphs=len(mine))
        torch.testing.assert_close(out[run], expected, rtol=1e-12, atol=1e-12)
        expected.pow(2).sum().backward()
        for name, p in ref.named_parameters():
            torch.testing.assert_close(params[name].grad[run], p.grad, rtol=1e-10, atol=1e-12)


def test_plain_network_equals_pyg_nnconv():
    """The official ExampleNet, built from PyG's NNConv and global_add_pool, with our weights."""
    pyg = pytest.importorskip("torch_geometric.nn")
    spec = GraphNetSpec()

    class ExampleNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            edge_net = [torch.nn.Linear(4, 32), torch.nn.ReLU()]
            self.conv1 = pyg.NNConv(
                11, 32, torch.nn.Sequential(*edge_net, torch.nn.Linear(32, 352))
            )
            edge_net = [torch.nn.Linear(4, 32), torch.nn.ReLU()]
            self.conv2 = pyg.NNConv(
                32, 16, torch.nn.Sequential(*edge_net, torch.nn.Linear(32, 512))
            )
            self.fc_1 = torch.nn.Linear(16, 32)
            self.out = torch.nn.Linear(32, 1)

        def forward(self, x, edge_index, edge_attr, batch):
            x = torch.relu(self.conv1(x, edge_index, edge_attr))
            x = torch.relu(self.conv2(x, edge_index, edge_attr))
            return self.out(torch.relu(self.fc_1(pyg.global_add_pool(x, batch))))

    params = init_graphnet(spec, [4], dtype=torch.float64)
    official = ExampleNet().double()
    assert {n for n, _ in official.named_parameters()} == set(params)
    with torch.no_grad():
        for name, p in official.named_parameters():
            p.copy_(params[name][0])
    m = qm9.load_molecules(60)
    batch = flat(m, np.arange(60))
    ours = GraphNetReference(spec).double().load_run(params, 0)
    torch.testing.assert_close(ours(*batch, n_graphs=60), official(*batch), rtol=1e-12, atol=1e-10)


def test_init_is_pytorchs_default():
    params = init_graphnet(GraphNetSpec(), [0, 1], dtype=torch.float64)
    assert not params["conv1.bias"].any() and not params["conv2.bias"].any()
    assert params["conv2.nn.2.weight"].abs().max() <= 1 / 32**0.5
    assert params["conv1.lin.weight"].abs().max() <= 1 / 11**0.5
    assert params["conv1.lin.weight"].abs().max() > 0.9 / 11**0.5
    assert not torch.equal(params["out.weight"][0], params["out.weight"][1])


def test_ensemble_equals_solo_runs(ensemble_equals_solo):
    configs = [
        tiny(seed=0, init_scale=1.0),
        tiny(seed=1, init_scale=3.0, weight_decay=0.1),
        tiny(seed=2, init_scale=2.0, constraint="init"),
    ]
    together = ensemble_equals_solo(configs)
    assert not np.allclose(together[0]["train_loss"], together[1]["train_loss"])
    assert np.isnan(together[0]["test_acc"]).all()  # a regression: no accuracy


def test_trainer_equals_a_plain_loop():
    """K = 1 through the trainer vs GraphNetReference on PyG's flat batches + MSE +
    torch.optim.AdamW, the official loop's step (float64)."""
    cfg = tiny(seed=3, init_scale=3.0, weight_decay=0.1, steps=8)
    result = train_ensemble([cfg], device="cpu", progress=False, keep_weights=True)[0]
    molecules, train, _ = get("qm9").split(cfg.task)
    data = make_task(cfg.task, "cpu", "float64")
    params = init_graphnet(cfg.model, [cfg.seed], dtype=torch.float64)
    scale_(params, torch.tensor([cfg.init_scale], dtype=torch.float64))
    model = GraphNetReference(cfg.model).double().load_run(params, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = _Batches([cfg.seed], data.n_train, cfg.batch_size, "cpu")
    for step in range(cfg.steps):
        idx = batches.indices(step)[0].numpy()
        out = model(*flat(molecules, train[idx]), n_graphs=len(idx))
        loss = torch.nn.functional.mse_loss(out, data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(result.weights[name], p.detach().numpy(), rtol=1e-7, atol=1e-10)
