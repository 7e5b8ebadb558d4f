"""The IMDb task (paper Sec. 3.2): its embedded rows, the official preprocessing, the stacked
LSTM against ``nn.LSTM``, and the trainer (ensemble = solo runs; per-run gradient clipping
against a plain loop with ``clip_grad_norm_``)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from omnigrok.config import TaskSpec
from omnigrok.data import imdb
from omnigrok.models.lstm import LSTMReference, LSTMSpec, init_lstm, lstm_forward
from omnigrok.norms import clip_grad_norm_, global_norm, scale_
from omnigrok.task import make_task, rng
from omnigrok.tasks.imdb import imdb_run
from omnigrok.train import _Batches, train_ensemble

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb"


def tiny(**overrides):
    """A small IMDb run that trains in a second: 60 reviews, 20 tokens, a small LSTM."""
    base = dict(
        task=TaskSpec("imdb", n_train=40, n_test=20, seq_len=20, vocab=50),
        model=LSTMSpec(vocab=51, embed=8, hidden=12, layers=2),
        steps=12,
        batch_size=10,
        n_log=6,
        dtype="float64",
    )
    return imdb_run(**{**base, **overrides})


def test_embedded_rows_are_the_papers_first_1000():
    rows = imdb.load_embedded()
    assert len(rows) == 1000 and sum(label for _, label in rows) == 501
    assert rows[0][0].startswith("One of the other reviewers has mentioned") and rows[0][1] == 1
    if (SHARED / "imdb_first2499.csv.gz").is_file():  # the verified excerpt they came from
        shared = imdb._rows(
            gzip.decompress((SHARED / "imdb_first2499.csv.gz").read_bytes()).decode()
        )
        assert rows == shared[:1000]


def test_split_is_stratified_750_250_as_the_official_code():
    data = make_task(imdb_run().task)
    assert data.x_train.shape == (750, 500) and data.x_test.shape == (250, 500)
    assert int(data.y_test.sum()) == 125 and int(data.y_train.sum()) == 376
    assert int(data.x_train.max()) == 1000 and int(data.x_train.min()) == 0
    other = make_task(TaskSpec("imdb", n_train=750, n_test=250, data_seed=1))
    assert not torch.equal(data.y_test, other.y_test) or not torch.equal(data.x_test, other.x_test)


def test_preprocessing_follows_the_official_code():
    assert (
        imdb.clean("Don't!") == "Dont" and imdb.clean("80s,") == "s" and imdb.clean("<br") == "br"
    )
    words = imdb.vocabulary(["The film, the FILM! a great film", "great acting"], 2)
    assert words == {"film": 1, "great": 2}  # 'the' and 'a' are stop words
    encoded = imdb.encode(["great film indeed film", "nothing known"], words, 3)
    assert encoded.tolist() == [[2, 1, 1], [0, 0, 0]]  # first 3 known words; left-padded
    assert imdb.encode(["film"], words, 3).tolist() == [[0, 0, 1]]
    labels = np.array([1] * 501 + [0] * 499)
    train, test = imdb.stratified_split(labels, 250, rng(0, 3))
    assert labels[test].sum() == 125 and len(test) == 250 and len(set(train) | set(test)) == 1000


def test_more_reviews_need_the_full_csv_with_the_papers_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIGROK_DATA", str(tmp_path))
    with pytest.raises(imdb.ImdbDataError, match="need the full IMDb CSV"):
        imdb.load_reviews(1001)
    (tmp_path / imdb.FULL_CSV).write_text("review,sentiment\nsomething else,positive\n")
    with pytest.raises(imdb.ImdbDataError, match="first 1000 rows differ"):
        imdb.load_reviews(1001)
    (tmp_path / imdb.FULL_CSV).write_text("text,label\n")
    with pytest.raises(imdb.ImdbDataError, match="expected the columns review,sentiment"):
        imdb.load_reviews(1001)


def test_a_run_must_fit_the_task():
    with pytest.raises(ValueError, match="vocab must be the task's vocabulary \\+ 1 = 51"):
        tiny(model=LSTMSpec(vocab=1001, embed=8, hidden=12))
    with pytest.raises(ValueError, match="loss must be one of 'bce'"):
        tiny(loss="mse")
    with pytest.raises(ValueError, match="n_test must be at least 1"):
        tiny(task=TaskSpec("imdb", n_train=40, n_test=0, seq_len=20, vocab=50))


@pytest.mark.parametrize("per_run", [False, True])
def test_stacked_lstm_equals_torch_lstm(per_run):
    """Outputs and every parameter's gradient, run by run, against nn.LSTM (float64)."""
    spec = LSTMSpec(vocab=31, embed=6, hidden=10, layers=2)
    params = init_lstm(spec, [0, 1, 2], dtype=torch.float64)
    for p in params.values():
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 31, (3, 5, 9) if per_run else (5, 9), generator=gen)
    out = lstm_forward(spec, params, tokens)
    out.pow(2).sum().backward()
    for run in range(3):
        ref = LSTMReference(spec).double().load_run(params, run)
        mine = tokens[run] if per_run else tokens
        expected = ref(mine)
        torch.testing.assert_close(out[run], expected, rtol=1e-12, atol=1e-12)
        expected.pow(2).sum().backward()
        for name, p in ref.named_parameters():
            torch.testing.assert_close(params[name].grad[run], p.grad, rtol=1e-10, atol=1e-12)


def test_init_is_pytorchs_default_scaled_per_run():
    spec = LSTMSpec(vocab=101, embed=16, hidden=32)
    params = init_lstm(spec, [0, 1])
    bound = 1 / 32**0.5
    assert params["lstm.weight_hh_l1"].abs().max() <= bound
    assert params["embedding.weight"].std().item() == pytest.approx(1.0, rel=0.05)
    assert not torch.equal(params["fc.weight"][0], params["fc.weight"][1])


def test_ensemble_equals_solo_runs(ensemble_equals_solo):
    configs = [
        tiny(seed=0, init_scale=1.0, weight_decay=0.0, clip=None),
        tiny(seed=1, init_scale=6.0, weight_decay=1.0),
        tiny(seed=2, init_scale=3.0, weight_decay=0.0, constraint="init", clip=0.5),
    ]
    together = ensemble_equals_solo(configs)
    assert not np.allclose(together[0]["train_loss"], together[1]["train_loss"])


def test_trainer_with_clipping_equals_a_plain_loop():
    """K = 1 through the trainer vs LSTMReference + BCE on the sigmoid + clip_grad_norm_ +
    torch.optim.AdamW, the official loop's step (float64)."""
    cfg = tiny(seed=3, init_scale=6.0, weight_decay=1.0, clip=0.05, steps=8)
    result = train_ensemble([cfg], device="cpu", progress=False, keep_weights=True)[0]
    data = make_task(cfg.task, "cpu", "float64")
    params = init_lstm(cfg.model, [cfg.seed], dtype=torch.float64)
    scale_(params, torch.tensor([cfg.init_scale], dtype=torch.float64))
    model = LSTMReference(cfg.model).double().load_run(params, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = _Batches([cfg.seed], data.n_train, cfg.batch_size, "cpu")
    clipped = 0
    for step in range(cfg.steps):
        idx = batches.indices(step)[0]
        prob = torch.sigmoid(model(data.x_train[idx])[:, 0])
        loss = torch.nn.functional.binary_cross_entropy(prob, data.y_train[idx].double())
        opt.zero_grad()
        loss.backward()
        clipped += torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip) > cfg.clip
        opt.step()
    assert clipped > 0  # the clip acted, so the comparison covers it
    for name, p in model.named_parameters():
        np.testing.assert_allclose(result.weights[name], p.detach().numpy(), rtol=1e-7, atol=1e-10)


def test_clip_scales_each_run_by_its_own_norm():
    grads = {"a": torch.tensor([[3.0, 4.0], [0.3, 0.4]]), "b": torch.zeros(2, 1)}
    params = {n: torch.zeros_like(g, requires_grad=True) for n, g in grads.items()}
    for n, p in params.items():
        p.grad = grads[n].clone()
    clip_grad_norm_(params, torch.tensor([1.0, 1.0]))
    norms = global_norm({n: p.grad for n, p in params.items()})
    torch.testing.assert_close(norms, torch.tensor([1.0, 0.5]), rtol=1e-5, atol=1e-6)
