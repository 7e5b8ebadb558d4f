"""Checks for what a reader types: notebook parameters and command-line flags.

Papermill passes ``-p init_scale ten`` as the string "ten" and ``-p seeds 0-4`` as a string;
each value is checked here before any work starts, with a one-line error that names the
parameter, the value given and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from omnigrok.config import check_choice, check_float, check_int

PROFILES = ("smoke", "quick", "paper")
DEVICES = ("auto", "cpu", "cuda")


def parse_seeds(value: Any, name: str = "seeds") -> list[int]:
    """Seeds from a list of non-negative integers, one integer, or a string ``"0-4"`` /
    ``"0,2,5"``."""
    allowed = "a non-empty list of distinct non-negative integers or a range like '0-4'"
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]  # papermill's `-p seeds 3` passes an int: seed 3, as `-r seeds 3` does
    if isinstance(value, str):
        text = value.replace(" ", "")
        if m := re.fullmatch(r"(\d+)-(\d+)", text):
            lo, hi = int(m[1]), int(m[2])
            if hi < lo:
                raise ValueError(f"{name} must be {allowed}, got {value!r}")
            return list(range(lo, hi + 1))
        if re.fullmatch(r"\d+(,\d+)*", text):
            value = [int(s) for s in text.split(",")]
        else:
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    seeds = []
    for s in value:
        try:
            seeds.append(check_int(name, s, minimum=0, maximum=2**31 - 1))
        except ValueError:
            raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} must be {allowed}, got {value!r} (repeated seed)")
    return seeds


def check_profile(value: Any) -> str:
    return check_choice("profile", value, PROFILES)


def check_device(value: Any) -> str:
    """A known device name that is usable here (``cuda`` needs a GPU)."""
    from omnigrok.train import resolve_device

    check_choice("device", value, DEVICES)
    resolve_device(value)
    return value


def check_init_scale(value: Any, name: str = "init_scale") -> float:
    return check_float(name, value, positive=True)


def check_notebook_params(**params: Any) -> dict[str, Any]:
    """Validate a notebook's parameters by name; return them normalised.

    Known names: profile, seeds, device, init_scale(s), modadd_init_scale, weight_decay(s),
    steps, train_frac, lr. An unknown name is an error, so a typo is never silently ignored.
    ``seeds=None`` and ``weight_decay=None`` mean "the profile's default".
    """
    checks = {
        "profile": check_profile,
        "seeds": lambda v: None if v is None else parse_seeds(v),
        "device": check_device,
        "init_scale": check_init_scale,
        "init_scales": lambda v: [
            check_init_scale(x, "init_scales") for x in _non_empty(v, "init_scales")
        ],
        "modadd_init_scale": lambda v: check_init_scale(v, "modadd_init_scale"),
        "weight_decay": lambda v: (
            None if v is None else check_float("weight_decay", v, nonnegative=True)
        ),
        "weight_decays": lambda v: [
            check_float("weight_decays", x, nonnegative=True)
            for x in _non_empty(v, "weight_decays")
        ],
        "steps": lambda v: check_int("steps", v, minimum=1),
        "train_frac": lambda v: check_float("train_frac", v, open_unit=True),
        "lr": lambda v: check_float("lr", v, positive=True),
    }
    out = {}
    for name, value in params.items():
        if name not in checks:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(sorted(checks))}")
        out[name] = checks[name](value)
    return out


def _non_empty(value: Any, name: str) -> list:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {value!r}")
    return list(value)
