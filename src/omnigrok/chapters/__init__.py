"""The book's chapters, one module each, all of one shape (``omnigrok.chapters.base``):
``Setup`` (checked parameters, trains nothing) -> ``configs`` -> ``run`` (one sweep) ->
``numbers`` -> ``verdict`` -> figures.

``goldilocks`` (claim 1), ``large_init`` (claim 2), ``constraint`` (claim 3), ``axes``
(claim 4), ``imdb`` and ``qm9`` (claims 1-3 on the IMDb LSTM and the QM9 graph network),
``width`` (the discussion's width question), ``modadd_landscape`` (claim 1 on modular
addition), ``delay_gamma`` (the delay over two decades of γ), ``rivals`` (the norm constraint
against Grokfast, StableMax, ⊥Grad and a held logit scale), ``phases`` (the (α, N) phase
diagram on MNIST) and ``representation`` (is representation learning the key?) are chapters;
``dashboard`` and ``discussion`` read their outcomes, and ``cost`` counts their runs.
"""

from omnigrok.chapters import (
    axes,
    constraint,
    delay_gamma,
    goldilocks,
    imdb,
    large_init,
    modadd_landscape,
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
        goldilocks,
        large_init,
        constraint,
        axes,
        imdb,
        qm9,
        width,
        modadd_landscape,
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
    "axes",
    "chapter",
    "constraint",
    "delay_gamma",
    "goldilocks",
    "imdb",
    "large_init",
    "modadd_landscape",
    "phases",
    "qm9",
    "representation",
    "rivals",
    "width",
]
