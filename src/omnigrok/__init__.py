"""Omnigrok, reproduced: data, models, weight-norm tools and one ensemble-first trainer.

A companion to Liu, Michaud & Tegmark, "Omnigrok: Grokking Beyond Algorithmic Data"
(ICLR 2023). The notebooks in ``notebooks/`` only call this package.
"""

__version__ = "0.1.2"

# Where the notebooks' Colab links and install cells point (tests check they agree with this).
REPOSITORY = "https://github.com/omnigrok-companion/omnigrok"

# The task modules register themselves; importing them here means a run record can name any
# task whatever module a reader imports first.
from omnigrok import tasks  # noqa: E402, F401
