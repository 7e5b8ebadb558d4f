"""IMDb sentiment (paper Sec. 3.2, official ``imdb/grokking``): the first ``n_train + n_test``
reviews, split stratified (750/250 in the paper), a vocabulary of the ``vocab`` most frequent
training words (0: 1000), reviews left-padded to ``seq_len`` tokens (0: 500); a 2-layer LSTM
reads them and one logit says positive; binary cross-entropy."""

from __future__ import annotations

from typing import Any

import numpy as np

from omnigrok.checks import fail
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.data import imdb
from omnigrok.models.lstm import LSTMSpec
from omnigrok.registry import register
from omnigrok.task import Task, rng

SEQ_LEN = 500  # the official padding length
VOCAB = 1000  # the official vocabulary (plus 0, the padding token)


def seq_len(spec: TaskSpec) -> int:
    return spec.seq_len or SEQ_LEN


def vocab(spec: TaskSpec) -> int:
    return spec.vocab or VOCAB


class Imdb(Task):
    name = "imdb"
    fields = ("n_train", "n_test", "seq_len", "vocab", "data_seed")
    losses = ("bce",)
    models = ("lstm",)

    def label(self, spec: TaskSpec) -> str:
        return f"IMDb (N={spec.n_train + spec.n_test})"

    def n_classes(self, spec: TaskSpec) -> int:
        return 2

    def check(self, config: RunConfig) -> None:
        super().check(config)
        if config.task.n_test < 1:
            fail("n_test", config.task.n_test, "at least 1 (the reviews held out)")
        if config.model.vocab != vocab(config.task) + 1:
            fail(
                "vocab", config.model.vocab, f"the task's vocabulary + 1 = {vocab(config.task) + 1}"
            )

    def arrays(self, spec: TaskSpec) -> tuple[np.ndarray, ...]:
        rows = imdb.load_reviews(spec.n_train + spec.n_test)
        labels = np.array([label for _, label in rows], dtype=np.int64)
        train, test = imdb.stratified_split(labels, spec.n_test, rng(spec.data_seed, 3))
        texts = [text for text, _ in rows]
        words = imdb.vocabulary([texts[i] for i in train], vocab(spec))
        encoded = imdb.encode(texts, words, seq_len(spec))
        return encoded[train], labels[train], encoded[test], labels[test]

    def preset(self, **overrides: Any) -> RunConfig:
        """The official grokking run: 1000 reviews (750/250), 2-layer LSTM (embedding 64, hidden
        256 in the code, 128 in the paper's text), BCE, AdamW lr 3e-4, batch 50, gradient clip
        5, α = 6 with weight decay 1 (its baseline: α = 1, weight decay 0); 5000 epochs of 15
        steps in the code."""
        base = dict(
            task=TaskSpec("imdb", n_train=750, n_test=250),
            model=LSTMSpec(vocab=VOCAB + 1, embed=64, hidden=256, layers=2),
            steps=75_000,
            batch_size=50,
            loss="bce",
            lr=3e-4,
            weight_decay=1.0,
            init_scale=6.0,
            clip=5.0,
        )
        return RunConfig(**{**base, **overrides})


TASK = register(Imdb())
imdb_run = TASK.preset
