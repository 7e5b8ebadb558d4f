"""The rival methods of the rivals chapter (``chapters/rivals.py``), each one change to claim 3's
unconstrained run of a task (paper Sec. 3.1 and 3.3; Grokfast, Lee et al. 2024; StableMax and
⊥Grad, Prieto et al., ICLR 2025; a held output scale): their names, which task runs which, the
keys the notebook glues them under, and what each changes in the run's config:

* ``weight decay``: the grokking baseline (γ of the profile), claim 3's unconstrained run;
* ``no lever (γ = 0)``: what the levers without weight decay are measured against;
* ``norm held at w_c``: γ = 0, projected to claim 3's w_c (claim 3's held run);
* ``Grokfast-EMA + weight decay``: the baseline with the EMA filter at the task's published
  setting (modular addition: α 0.98, λ 2, ``gradfilter_ema``'s defaults; MNIST: α 0.8, λ 0.1,
  their ``main_mnist.py`` command);
* modular addition only (cross-entropy): ``StableMax``, ``⊥Grad``, ``⊥Grad + StableMax``, at
  γ = 0 as Prieto et al. run them;
* MNIST only (MSE, no softmax to collapse: StableMax does not apply): ``⊥Grad`` at γ = 0, and
  Grokfast's published MNIST run taken apart: it pairs the filter with γ = 2, 200x the
  paper's 0.01, so ``Grokfast's γ alone`` and ``Grokfast-EMA + Grokfast's γ`` (their run);
* ``logit scale held`` (modular addition) / ``output scale held`` (MNIST), at γ = 0 and with
  weight decay: each example's outputs rescaled to a fixed root-mean-square, so their scale
  cannot move while the norm does (free, or pulled down by the decay). The reverse, the norm
  held while the outputs' scale moves freely, is ``norm held at w_c``.
"""

from __future__ import annotations

from omnigrok import profiles

BASELINE = "weight decay"
NO_LEVER = "no lever (γ = 0)"
HELD = "norm held at w_c"
GROKFAST = "Grokfast-EMA + weight decay"
STRONG_DECAY = "Grokfast's γ alone"
GROKFAST_STRONG = "Grokfast-EMA + Grokfast's γ"
METHODS = {
    "modadd": (
        BASELINE,
        NO_LEVER,
        HELD,
        GROKFAST,
        "StableMax",
        "⊥Grad",
        "⊥Grad + StableMax",
        "logit scale held",
        "logit scale held + weight decay",
    ),
    "mnist": (
        BASELINE,
        NO_LEVER,
        HELD,
        GROKFAST,
        STRONG_DECAY,
        GROKFAST_STRONG,
        "⊥Grad",
        "output scale held",
        "output scale held + weight decay",
    ),
}

# Each method's name in ``numbers`` (the notebook's glue keys: ``<task>_<key>_steps`` ...).
KEYS = {
    BASELINE: "weight_decay",
    NO_LEVER: "no_lever",
    HELD: "held",
    GROKFAST: "grokfast",
    STRONG_DECAY: "strong_decay",
    GROKFAST_STRONG: "grokfast_strong",
    "StableMax": "stablemax",
    "⊥Grad": "perp_grad",
    "⊥Grad + StableMax": "perp_grad_stablemax",
    "logit scale held": "logit_held",
    "logit scale held + weight decay": "logit_held_wd",
    "output scale held": "output_held",
    "output scale held + weight decay": "output_held_wd",
}


def changes(profile: str, logit_scale: float, task: str, method: str) -> dict:
    """The config fields ``method`` changes in ``task``'s base run at ``profile``'s settings
    (``logit_scale``: the logits' root-mean-square modular addition's controls hold). ``HELD``
    is claim 3's regime, built there, not here."""
    table = profiles.RIVALS[profile]
    prefix = "" if task == "modadd" else f"{task}_"
    off = dict(weight_decay=0.0)
    filtered = dict(
        grad_filter="ema",
        filter_alpha=table[f"{prefix}filter_alpha"],
        filter_lamb=table[f"{prefix}filter_lamb"],
    )
    scale = logit_scale if task == "modadd" else table[f"{task}_output_scale"]
    held_outputs = dict(logit_scale=scale)
    common = {
        BASELINE: {},
        NO_LEVER: off,
        GROKFAST: filtered,
        "⊥Grad": dict(off, perp_grad=True),
    }
    own = {
        "modadd": {
            "StableMax": dict(off, softmax="stablemax"),
            "⊥Grad + StableMax": dict(off, perp_grad=True, softmax="stablemax"),
            "logit scale held": dict(off, **held_outputs),
            "logit scale held + weight decay": held_outputs,
        },
        "mnist": {
            STRONG_DECAY: dict(weight_decay=table["mnist_strong_decay"]),
            GROKFAST_STRONG: dict(filtered, weight_decay=table["mnist_strong_decay"]),
            "output scale held": dict(off, **held_outputs),
            "output scale held + weight decay": held_outputs,
        },
    }[task]
    return {**common, **own}[method]
