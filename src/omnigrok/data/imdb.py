"""IMDb reviews for the Omnigrok LSTM experiment (paper Sec. 3.2; official ``imdb/grokking``).

The paper's data are the first 1000 rows of the IMDb review CSV, which ship inside the package
(``_data/imdb_first1000.csv.gz``, see ``_data/IMDB_README.md``), so the experiment needs no
network. Preprocessing follows the official code: lower-case, split on whitespace, strip each
word of everything but letters (punctuation and digits), drop English stop words, keep the
``vocab`` most frequent words of the *training* reviews (ties in order of first appearance),
encode every review with them (ids 1..vocab; other words dropped) and left-pad with 0 to
``seq_len`` tokens (longer reviews keep their first ``seq_len``).

The split is stratified by label with ``data_seed``, 750/250 for the paper's 1000 rows, the
same class counts as the official ``sklearn.model_selection.train_test_split(stratify=y)``
(125 positive and 125 negative test reviews), but not its exact rows: that call used the
global NumPy seed of the script. A larger N reads ``IMDB Dataset.csv`` from ``$OMNIGROK_DATA``
(its first 1000 rows must be the embedded ones, or it is refused as another file).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

EMBEDDED = "imdb_first1000.csv.gz"
EMBEDDED_MD5 = "5d51563973b4e92c02841eab926cec3b"  # of the decompressed embedded CSV
EMBEDDED_ROWS = 1000
FULL_CSV = "IMDB Dataset.csv"
DATA_ENV = "OMNIGROK_DATA"

# NLTK's English stop words, as the official code lists them.
STOP_WORDS = frozenset(
    """a about above after again against ain all am an and any are aren aren't as at be because
    been before being below between both but by can couldn couldn't d did didn didn't do does
    doesn doesn't doing don don't down during each few for from further had hadn hadn't has hasn
    hasn't have haven haven't having he her here hers herself him himself his how i if in into
    is isn isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my
    myself needn needn't no nor not now o of off on once only or other our ours ourselves out
    over own re s same shan shan't she she's should should've shouldn shouldn't so some such t
    than that that'll the their theirs them themselves then there these they this those through
    to too under until up ve very was wasn wasn't we were weren weren't what when where which
    while who whom why will with won won't wouldn wouldn't y you you'd you'll you're you've your
    yours yourself yourselves""".split()
)


class ImdbDataError(RuntimeError):
    """The IMDb rows are missing, corrupt or not the expected ones; the message says what to do."""


def _rows(text: str) -> list[tuple[str, int]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != ["review", "sentiment"]:
        raise ImdbDataError(f"expected the columns review,sentiment, got {header}")
    rows = []
    for review, sentiment in reader:
        if sentiment not in ("positive", "negative"):
            raise ImdbDataError(f"sentiment must be positive or negative, got {sentiment!r}")
        rows.append((review, int(sentiment == "positive")))
    return rows


def load_embedded() -> list[tuple[str, int]]:
    """The paper's 1000 reviews as (text, label 1 = positive), checked against their md5."""
    resource = resources.files("omnigrok") / "_data" / EMBEDDED
    try:
        raw = gzip.decompress(resource.read_bytes())
    except (OSError, EOFError) as err:
        raise ImdbDataError(f"the embedded IMDb rows ({resource}) are unreadable ({err})") from err
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != EMBEDDED_MD5:
        raise ImdbDataError(
            f"the embedded IMDb rows ({resource}) fail their md5; reinstall omnigrok, or rebuild "
            "them with scripts/make_imdb_subset.py"
        )
    return _rows(raw.decode("utf-8"))


def load_reviews(n: int) -> list[tuple[str, int]]:
    """The first ``n`` reviews: the embedded ones up to 1000, else ``IMDB Dataset.csv`` from
    ``$OMNIGROK_DATA`` (whose first 1000 rows must equal the embedded ones)."""
    embedded = load_embedded()
    if n <= EMBEDDED_ROWS:
        return embedded[:n]
    folder = os.environ.get(DATA_ENV)
    path = Path(folder or "~/.cache/omnigrok").expanduser() / FULL_CSV
    if not path.is_file():
        raise ImdbDataError(
            f"{n} reviews need the full IMDb CSV: put {FULL_CSV!r} (the 50,000-review CSV of "
            f"the Large Movie Review Dataset) into ${DATA_ENV} ({path.parent}); up to "
            f"{EMBEDDED_ROWS} reviews need no file"
        )
    rows = _rows(path.read_text(encoding="utf-8"))
    if rows[:EMBEDDED_ROWS] != embedded:
        raise ImdbDataError(f"{path}: its first {EMBEDDED_ROWS} rows differ from the paper's")
    if len(rows) < n:
        raise ImdbDataError(f"{path} holds {len(rows)} reviews, fewer than the {n} asked for")
    return rows[:n]


def clean(word: str) -> str:
    """The official ``preprocess_string``: letters only (no punctuation, digits, spaces)."""
    return re.sub(r"\d", "", re.sub(r"\s+", "", re.sub(r"[^\w\s]", "", word)))


def stratified_split(labels: np.ndarray, n_test: int, rng: np.random.Generator):
    """Train and test indices, each class's share of the test set as close to its share of
    the data as whole rows allow (largest remainders, as scikit-learn's stratified split)."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n_test / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n_test - take.sum()]:
        take[i] += 1
    test = np.concatenate(
        [
            rng.permutation(np.flatnonzero(labels == c))[:k]
            for c, k in zip(classes, take, strict=True)
        ]
    )
    train = np.setdiff1d(np.arange(len(labels)), test)
    return rng.permutation(train), rng.permutation(test)


def vocabulary(reviews: list[str], size: int) -> dict[str, int]:
    """The ``size`` most frequent cleaned non-stop words, ids from 1 (ties: first seen first)."""
    words = Counter(
        w
        for text in reviews
        for word in text.lower().split()
        if (w := clean(word)) and w not in STOP_WORDS
    )
    ranked = sorted(words, key=words.get, reverse=True)[:size]
    return {w: i + 1 for i, w in enumerate(ranked)}


def encode(reviews: list[str], vocab: dict[str, int], seq_len: int) -> np.ndarray:
    """Token ids ``[len(reviews), seq_len]``: each review's first ``seq_len`` known words,
    right-aligned after zeros (the official ``padding_``)."""
    out = np.zeros((len(reviews), seq_len), dtype=np.int64)
    for i, text in enumerate(reviews):
        ids = [vocab[w] for word in text.lower().split() if (w := clean(word)) in vocab][:seq_len]
        if ids:
            out[i, -len(ids) :] = ids
    return out
