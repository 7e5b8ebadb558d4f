"""Frozen, validated records that describe a run completely.

A run is the unit of the paper's experiments (Omnigrok, Sec. 2-4): a task, a model, an optimizer
setting, an initialization scale α, an optional norm constraint, a number of steps and a seed.
Every value is checked in the constructor, so a bad parameter fails here with a message naming
it, long before it reaches torch. The records hash to the key the results store files a run
under (``run_key``), so two equal configs always share their results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from omnigrok import registry as task_registry
from omnigrok.checks import check_choice, check_float, check_int, fail
from omnigrok.models import MLPSpec, TransformerSpec, family, spec_from_dict

LOSSES = ("mse", "ce", "bce")
DTYPES = ("float32", "float64")
CONSTRAINTS = ("none", "init", "fixed")
SOFTMAXES = ("softmax", "stablemax")
GRAD_FILTERS = ("none", "ema")


def _set(obj: Any, name: str, value: Any) -> None:
    # Frozen dataclasses normalise their own fields (e.g. 10 -> 10.0) in __post_init__.
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class TaskSpec:
    """Which data a run trains on: the task's name (a module of ``omnigrok.tasks``, which
    says what the other fields mean for it) and its sizes.

    ``mnist``: the first ``n_train`` training images, all 10k test images (paper Sec. 3.1).
    ``teacher_student``: a fixed random 5-100-100-5 tanh teacher, ``n_train``/``n_test``
    inputs from N(0, I) (paper Fig. 2). ``modadd``: pairs (a, b) -> (a + b) mod ``p``, a random
    ``train_frac`` of all pairs for training (Nanda et al.; paper Sec. 3.3).
    ``imdb``: the first ``n_train + n_test`` reviews, split stratified; ``vocab`` most frequent
    words, reviews cut or left-padded to ``seq_len`` tokens (0: the task's default; paper
    Sec. 3.2). ``data_seed`` fixes the teacher, the inputs and the split, and nothing else.
    ``messiness`` (``mnist`` only; paper Sec. 4): each image x of class c is fed as
    m·x + (1 - m)·t_c, t_c a constant image that names its class; 1: the raw images.
    """

    name: str
    n_train: int = 1000
    n_test: int = 0
    p: int = 113
    train_frac: float = 0.3
    data_seed: int = 0
    seq_len: int = 0
    vocab: int = 0
    messiness: float = 1.0

    def __post_init__(self) -> None:
        check_choice("task", self.name, tuple(task_registry.TASKS))
        _set(self, "n_train", check_int("n_train", self.n_train, minimum=1, maximum=60000))
        _set(self, "n_test", check_int("n_test", self.n_test, minimum=0, maximum=1_000_000))
        _set(self, "p", check_int("p", self.p, minimum=2, maximum=100_000))
        _set(self, "train_frac", check_float("train_frac", self.train_frac, open_unit=True))
        _set(self, "data_seed", check_int("data_seed", self.data_seed, minimum=0))
        _set(self, "seq_len", check_int("seq_len", self.seq_len, minimum=0, maximum=100_000))
        _set(self, "vocab", check_int("vocab", self.vocab, minimum=0, maximum=1_000_000))
        messiness = check_float("messiness", self.messiness, nonnegative=True)
        if messiness > 1:
            fail("messiness", self.messiness, "a number in [0, 1]")
        _set(self, "messiness", messiness)


ModelSpec = MLPSpec | TransformerSpec  # the built-in families (models/ may hold more)


@dataclass(frozen=True)
class RunConfig:
    """One training run, completely.

    Fields split in two groups. *Shape* fields (task, model, steps, batch size, loss, betas,
    eps, dtype, logging density, probe) must agree for runs that train together as one stacked
    ensemble; *value* fields (seed, lr, weight decay, α, constraint, gradient clip) may differ
    run by run. ``clip``: each run's gradient rescaled to at most this global norm before its
    optimizer step (the official IMDb code clips at 5); None: no clipping. ``probe``: the name
    of an extra curve the run's task computes from its weights at every logged step (the task's
    ``probes``, e.g. modular addition's ``fourier_top5``); "": none. ``stop_acc``: a stop rule
    (``stop_rule.stop_step``): the run ends once train and test accuracy have both stayed at or
    above it for max(1000 steps, the step they first got there); its stored curves end there.
    None: the whole budget (every run archived before the rule keeps its key).

    ``constraint``: ``none``; ``init`` holds the weight norm at its value right after scaling
    by α (α·w0, paper Sec. 2 "reduced landscape"); ``fixed`` holds it at ``target_norm``
    (paper Sec. 3: "constrained" runs). Projection happens after every optimizer step.
    ``batch_size=None`` means full batch. ``seed`` fixes the init and the batch order.

    The rivals' levers (``omnigrok.rivals``; value fields, so one stack mixes them):
    ``softmax``: ``stablemax`` replaces the cross-entropy's softmax by Prieto et al.'s StableMax
    (ICLR 2025); ``perp_grad``: ⊥Grad, each tensor's gradient stripped of its component along
    that tensor's weights and rescaled to its own norm (their ``OrthoGrad``); ``grad_filter``:
    ``ema`` adds ``filter_lamb`` times an EMA (factor ``filter_alpha``) of past gradients to
    each gradient (Grokfast, Lee et al. 2024; ``gradfilter_ema``); ``logit_scale``: each
    example's logits rescaled to this root-mean-square over the classes (a temperature set at
    every forward pass, so the logits' scale is held while the weights move; None: raw logits;
    under MSE the same rescaling holds the outputs' scale).
    """

    task: TaskSpec
    model: ModelSpec
    steps: int
    batch_size: int | None = None
    loss: str = "mse"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    init_scale: float = 1.0
    constraint: str = "none"
    target_norm: float | None = None
    seed: int = 0
    dtype: str = "float32"
    n_log: int = 250
    clip: float | None = None
    softmax: str = "softmax"
    perp_grad: bool = False
    grad_filter: str = "none"
    filter_alpha: float = 0.98
    filter_lamb: float = 2.0
    logit_scale: float | None = None
    probe: str = ""
    stop_acc: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, TaskSpec):
            fail("task", self.task, "a TaskSpec")
        family(self.model)  # a spec of a known model family
        _set(self, "steps", check_int("steps", self.steps, minimum=1))
        if self.batch_size is not None:
            _set(self, "batch_size", check_int("batch_size", self.batch_size, minimum=1))
        check_choice("loss", self.loss, LOSSES)
        _set(self, "lr", check_float("lr", self.lr, positive=True))
        if not isinstance(self.betas, tuple | list) or len(self.betas) != 2:
            fail("betas", self.betas, "a pair of numbers in [0, 1)")
        betas = tuple(check_float("betas", b, nonnegative=True) for b in self.betas)
        if any(b >= 1 for b in betas):
            fail("betas", self.betas, "a pair of numbers in [0, 1)")
        _set(self, "betas", betas)
        _set(self, "eps", check_float("eps", self.eps, positive=True))
        _set(self, "weight_decay", check_float("weight_decay", self.weight_decay, nonnegative=True))
        _set(self, "init_scale", check_float("init_scale", self.init_scale, positive=True))
        check_choice("constraint", self.constraint, CONSTRAINTS)
        if self.constraint == "fixed":
            _set(self, "target_norm", check_float("target_norm", self.target_norm, positive=True))
        elif self.target_norm is not None:
            fail("target_norm", self.target_norm, f"None when constraint={self.constraint!r}")
        _set(self, "seed", check_int("seed", self.seed, minimum=0, maximum=2**31 - 1))
        check_choice("dtype", self.dtype, DTYPES)
        _set(self, "n_log", check_int("n_log", self.n_log, minimum=2))
        if self.clip is not None:
            _set(self, "clip", check_float("clip", self.clip, positive=True))
        self._check_rivals()
        if not isinstance(self.probe, str):
            fail("probe", self.probe, 'a probe\'s name or ""')
        if self.stop_acc is not None:
            stop = check_float("stop_acc", self.stop_acc, positive=True)
            if stop > 1:
                fail("stop_acc", self.stop_acc, "None or an accuracy in (0, 1]")
            _set(self, "stop_acc", stop)
        # What the task needs of its model, loss and batch (its module says).
        task_registry.get(self.task.name).check(self)

    def _check_rivals(self) -> None:
        """The rivals' levers (see the class docstring): each on its own terms."""
        check_choice("softmax", self.softmax, SOFTMAXES)
        if self.softmax != "softmax" and self.loss != "ce":
            fail("softmax", self.softmax, "'softmax' unless loss='ce'")
        if not isinstance(self.perp_grad, bool):
            fail("perp_grad", self.perp_grad, "True or False")
        check_choice("grad_filter", self.grad_filter, GRAD_FILTERS)
        alpha = check_float("filter_alpha", self.filter_alpha, nonnegative=True)
        if alpha >= 1:
            fail("filter_alpha", self.filter_alpha, "a number in [0, 1)")
        _set(self, "filter_alpha", alpha)
        _set(self, "filter_lamb", check_float("filter_lamb", self.filter_lamb, nonnegative=True))
        # Off, the filter's values change nothing: only their defaults, so one run, one key.
        if self.grad_filter == "none":
            for name in ("filter_alpha", "filter_lamb"):
                if getattr(self, name) != LATER_FIELDS[name]:
                    fail(name, getattr(self, name), f"{LATER_FIELDS[name]} when grad_filter='none'")
        if self.logit_scale is not None:
            _set(self, "logit_scale", check_float("logit_scale", self.logit_scale, positive=True))

    # -- grouping -------------------------------------------------------------------------
    def shape(self) -> tuple:
        """What runs must share to train as one stacked ensemble."""
        return (
            self.task,
            self.model,
            self.steps,
            self.batch_size,
            self.loss,
            self.betas,
            self.eps,
            self.dtype,
            self.n_log,
            self.probe,
        )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; the input of ``run_key``. Fields added after runs were
        stored (``LATER_FIELDS``) are left out at their defaults, so those runs keep their
        keys; ``from_dict`` restores the defaults."""
        d = dataclasses.asdict(self)
        d["model"]["kind"] = self.model.kind
        for path, default in LATER_FIELDS.items():
            *parents, name = path.split(".")
            holder = d
            for parent in parents:
                holder = holder[parent]
            if holder[name] == default:
                del holder[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        spec = spec_from_dict(d.pop("model"))
        return cls(task=TaskSpec(**d.pop("task")), model=spec, betas=tuple(d.pop("betas")), **d)


# Fields added after the first runs were stored and archived, with their defaults: a run at
# the default computes what it did before, and its key must not move (see ``to_dict``).
LATER_FIELDS: dict[str, Any] = {
    "task.seq_len": 0,
    "task.vocab": 0,
    "clip": None,
    "softmax": "softmax",
    "perp_grad": False,
    "grad_filter": "none",
    "filter_alpha": 0.98,
    "filter_lamb": 2.0,
    "logit_scale": None,
    "task.messiness": 1.0,
    "probe": "",
    "stop_acc": None,
}

# What a run computes is fixed by its config and by this number, not by the package release:
# bump it only when a change in the code changes the curves of some config (an init, the
# optimizer's rounding, the logging schedule), so that a release that changes nothing a run
# computes keeps every stored and archived key. "0.1.2" is the release that last did.
COMPUTE_VERSION = "0.1.2"
# A change that touches one task's runs only bumps that task's entry here, so the other tasks'
# keys (and archived runs) stay. modadd 2: its runs also log ``test_acc_novel``.
TASK_COMPUTE_VERSIONS = {"modadd": "2"}


def run_key(config: RunConfig, version: str | None = None) -> str:
    """Hash of a run's whole config and the compute version of its task (``COMPUTE_VERSION``,
    plus ``TASK_COMPUTE_VERSIONS`` where the task has one): its name in the store."""
    payload = {"config": config.to_dict(), "version": version or COMPUTE_VERSION}
    if config.task.name in TASK_COMPUTE_VERSIONS:
        payload["task_version"] = TASK_COMPUTE_VERSIONS[config.task.name]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
