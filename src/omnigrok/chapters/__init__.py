"""The book's chapters, one module each, all of one shape (``omnigrok.chapters.base``):
``Setup`` (checked parameters, trains nothing) -> ``configs`` -> ``run`` (one sweep) ->
``numbers`` -> ``verdict`` -> figures.

Each module is named as its notebook, its archive part and its page: ``claim1`` (the
Goldilocks zone), ``claim2`` (large-init grokking on MNIST), ``claim3`` (a norm constraint
removes the delay), ``claim4`` (linear vs log step axis), ``imdb`` and ``qm9`` (claims 1-3 on
the IMDb LSTM and the QM9 graph network), ``width`` (the discussion's width question, shown on
the discussion page), ``landscape_modadd`` (claim 1 on modular addition), ``delay_gamma`` (the
delay over two decades of γ), ``rivals`` (the norm constraint against Grokfast, StableMax,
⊥Grad and a held logit scale), ``phases`` (the (α, N) phase diagram on MNIST) and
``representation`` (is representation learning the key?); ``dashboard`` and ``discussion``
read their outcomes, and ``performance`` counts their runs.
"""

from omnigrok.chapters import (
    claim1,
    claim2,
    claim3,
    claim4,
    delay_gamma,
    imdb,
    landscape_modadd,
    phases,
    qm9,
    representation,
    rivals,
    width,
)
from omnigrok.chapters.base import Chapter

CHAPTERS: tuple[Chapter, ...] = tuple(
    m.CHAPTER
    for m in (
        claim1,
        claim2,
        claim3,
        claim4,
        imdb,
        qm9,
        width,
        landscape_modadd,
        delay_gamma,
        rivals,
        phases,
        representation,
    )
)


def chapter(name: str) -> Chapter:
    """The chapter called ``name`` (``claim1`` ... ``claim4``, ``width``)."""
    for c in CHAPTERS:
        if c.name == name:
            return c
    raise ValueError(f"chapter must be one of {', '.join(c.name for c in CHAPTERS)}, got {name!r}")


__all__ = [
    "CHAPTERS",
    "Chapter",
    "chapter",
    "claim1",
    "claim2",
    "claim3",
    "claim4",
    "delay_gamma",
    "imdb",
    "landscape_modadd",
    "phases",
    "qm9",
    "representation",
    "rivals",
    "width",
]
