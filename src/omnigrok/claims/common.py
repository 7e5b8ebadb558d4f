"""What every claim module shares: profile handling, seeds, running through the store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from omnigrok.config import RunConfig
from omnigrok.params import check_device, check_profile, parse_seeds
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep
from omnigrok.train import RunResult

DEFAULT_SEEDS = {"smoke": 2, "quick": 3, "paper": 5}


def resolve(profile: str, seeds: Any, device: str) -> tuple[str, list[int], str]:
    """Checked profile, seeds (None: the profile's default count, from 0) and device."""
    profile = check_profile(profile)
    seeds = list(range(DEFAULT_SEEDS[profile])) if seeds is None else parse_seeds(seeds)
    return profile, seeds, check_device(device)


def fetch(
    configs: Sequence[RunConfig], device: str, progress: bool, store: ResultStore | None = None
) -> list[RunResult]:
    """Results of ``configs`` from the store, training the missing ones."""
    return run_sweep(configs, store=store, device=device, progress=progress)


def final(results: Sequence[RunResult], metric: str) -> np.ndarray:
    """Each run's last logged value of ``metric``."""
    return np.array([r[metric][-1] for r in results])
