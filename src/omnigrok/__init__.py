"""Omnigrok, reproduced: data, models, weight-norm tools and one ensemble-first trainer.

A companion to Liu, Michaud & Tegmark, "Omnigrok: Grokking Beyond Algorithmic Data"
(ICLR 2023). The notebooks in ``notebooks/`` only call this package.
"""

__version__ = "0.3.0"

# Where the notebooks' Colab badges and install cells point. A literal, not read from the
# installed metadata, so it holds in a source checkout too; tests/test_hygiene.py checks that
# pyproject's [project.urls], CITATION.cff, the README and every notebook agree with it.
REPOSITORY = "https://github.com/omnigrok-companion/omnigrok"

# The task modules register themselves; importing them here means a run record can name any
# task whatever module a reader imports first.
from omnigrok import tasks  # noqa: E402, F401
