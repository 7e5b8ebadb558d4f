"""The protocol every chapter follows: setup -> configs -> run -> numbers -> verdict -> figures.

A chapter is a module of ``omnigrok.chapters`` holding:

* ``Setup``: a frozen record of the chapter's parameters (profile, seeds, device and its own),
  checked when it is constructed (the one place a notebook's or the CLI's parameters are
  checked) and training nothing; ``Setup.configs()`` lists every run it needs;
* ``run(setup)``: the results, through one ``run_sweep`` call (stored runs load, missing ones
  train as stacks of one shape);
* ``numbers(outcome)`` for the prose, ``verdict(outcome)`` against a stated criterion
  (claims only), and ``figure*`` functions;
* ``CHAPTER``: a ``Chapter`` naming all of that for the dashboard, the book's cost, the
  archive and the tests, which loop over ``omnigrok.chapters.CHAPTERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnigrok import profiles
from omnigrok.checks import check_device, check_profile, parse_seeds
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.report.verdict import Verdict
from omnigrok.stop_rule import stop_step
from omnigrok.store import ResultStore, RunResult
from omnigrok.sweep import run_sweep
from omnigrok.tasks import mnist_run, modadd_run


@dataclass(frozen=True)
class Setup:
    """What every chapter's setup holds: a checked profile, seeds (None: the profile's
    default for the chapter, from 0) and device. Subclasses add their own parameters and
    derive their runs in ``__post_init__`` (calling this one first)."""

    profile: str = "quick"
    seeds: Any = None
    device: str = "auto"

    chapter = ""  # which chapter's default seeds (profiles.CHAPTER_SEEDS)

    def __post_init__(self) -> None:
        self._set("profile", check_profile(self.profile))
        chosen = profiles.seeds(self.profile, self.chapter) if self.seeds is None else self.seeds
        self._set("seeds", tuple(parse_seeds(chosen)))
        self._set("device", check_device(self.device))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def configs(self) -> list[RunConfig]:
        """Every run this setup needs (that can be listed before any training)."""
        raise NotImplementedError

    def planned(self) -> list[RunConfig]:
        """Every run the chapter will train, for counting its cost: ``configs()``, plus runs
        whose values wait on other runs, with a stand-in value (claim 3)."""
        return self.configs()


def large_init_mnist(
    profile: str, init_scale: float = 8.0, weight_decay: float | None = None
) -> RunConfig:
    """The profile's large-init MNIST run (paper Sec. 3.1, Fig. 4: α = 8, γ = 0.01 on 1000
    images; ``profiles.LARGE_INIT``), built once for every chapter that reuses it (claims 2 and
    3, the delay over γ, the phases). ``weight_decay`` None: the profile's. α and γ are checked
    by ``RunConfig`` itself, naming the parameter."""
    p = profiles.LARGE_INIT[profile]
    return mnist_run(
        task=TaskSpec("mnist", n_train=1000, n_test=p["n_test"]),
        steps=p["steps"],
        weight_decay=p["weight_decay"] if weight_decay is None else weight_decay,
        init_scale=init_scale,
        n_log=p["n_log"],
    )


def modadd_base(profile: str, init_scale: float = 1.0) -> RunConfig:
    """The profile's unconstrained modular-addition run (weight decay 1, as Nanda et al.),
    shared by claims 3 and 4 so that their unconstrained runs are the same stored runs."""
    return modadd_run(**profiles.MODADD[profile], init_scale=init_scale)


def fetch(
    configs: Sequence[RunConfig], device: str, progress: bool, store: ResultStore | None = None
) -> dict[RunConfig, RunResult]:
    """Results of ``configs`` from the store, training the missing ones: one ``run_sweep``."""
    results = run_sweep(configs, store=store, device=device, progress=progress)
    return dict(zip(configs, results, strict=True))


def final(results: Sequence[RunResult], metric: str) -> np.ndarray:
    """Each run's last logged value of ``metric``."""
    return np.array([r[metric][-1] for r in results])


def _stopped_by_rule(r: RunResult) -> bool:
    """Whether ``r``'s own stop rule ended it where its curves end."""
    if r.config.stop_acc is None or len(r.steps) == 0:
        return False
    return stop_step(r.steps, r["train_acc"], r["test_acc"], r.config.stop_acc) == r.steps[-1]


def complete_precondition(results: Sequence[RunResult]) -> dict[str, tuple[bool, str]]:
    """Every run logged to its budget (``config.steps``), or ended by divergence or by its own
    stop rule (``RunConfig.stop_acc``). A curve cut short otherwise would read as "never
    reached" where the run was never finished: a failed precondition ("not tested"), not
    evidence, naming the runs."""
    short = [
        f"{r.config.task.name} α={r.config.init_scale:g} γ={r.config.weight_decay:g} seed "
        f"{r.config.seed}: logged to step {int(r.steps[-1]) if len(r.steps) else 0} of "
        f"{r.config.steps}"
        for r in results
        if r.diverged_at is None
        and (len(r.steps) == 0 or r.steps[-1] < r.config.steps)
        and not _stopped_by_rule(r)
    ]
    what = "; ".join(short[:3]) + (f" and {len(short) - 3} more" if len(short) > 3 else "")
    return {
        "every run is logged to its budget (or diverged, or met its stop rule)": (
            not short,
            what or f"all {len(results)} runs logged to their last step",
        )
    }


@dataclass(frozen=True)
class Chapter:
    """One chapter, as the dashboard, the cost page, the archive and the tests see it.

    ``parts``: the archive parts its pages read (``omnigrok.archive``); ``verdict`` is None
    for chapters that judge no claim of the paper."""

    name: str
    title: str
    setup: Callable[..., Setup]
    run: Callable[..., Any]
    numbers: Callable[[Any], dict[str, str]]
    verdict: Callable[[Any], Verdict] | None = None
    parts: tuple[str, ...] = ()
    claim: str = ""  # the claim in one line (the dashboard's row)
    headline: Callable[[Any], str] | None = None  # the measured numbers behind it, in one line
    # What completes a setup whose runs depend on other runs (w_c read off a landscape), and
    # what waits while those are missing; the archive's producer asks for it part by part.
    prepare: Callable[..., Setup] | None = None
    waits: str = ""
