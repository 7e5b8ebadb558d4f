"""Checks for every value a reader types: records, notebook parameters, command-line flags.

The one layer where a rule is written: each check returns the value normalised or raises a
one-line ``ValueError`` naming the parameter, the value given and what is allowed. Papermill
passes ``-p seeds 3`` as an int and ``-p seeds 0-4`` as a string; both are accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NoReturn

import torch

PROFILES = ("smoke", "quick", "paper")
DEVICES = ("auto", "cpu", "cuda")


def fail(name: str, value: Any, allowed: str) -> NoReturn:
    raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise a one-line error naming ``name``.

    Integral floats (``10.0``) are accepted because papermill and YAML produce them; bools,
    strings and fractional floats are not.
    """
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    allowed = "an integer" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(name, value, allowed)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        fail(name, value, allowed)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        fail(name, value, allowed)
    return value


def check_float(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    open_unit: bool = False,
) -> float:
    """Return ``value`` as a finite float, or raise a one-line error naming ``name``."""
    if positive:
        allowed = "a positive finite number"
    elif nonnegative:
        allowed = "a non-negative finite number"
    elif open_unit:
        allowed = "a number strictly between 0 and 1"
    else:
        allowed = "a finite number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(name, value, allowed)
    value = float(value)
    if not math.isfinite(value):
        fail(name, value, allowed)
    if positive and value <= 0:
        fail(name, value, allowed)
    if nonnegative and value < 0:
        fail(name, value, allowed)
    if open_unit and not 0 < value < 1:
        fail(name, value, allowed)
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else a one-line error naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


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
                fail(name, value, allowed)
            return list(range(lo, hi + 1))
        if not re.fullmatch(r"\d+(,\d+)*", text):
            fail(name, value, allowed)
        value = [int(s) for s in text.split(",")]
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        fail(name, value, allowed)
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in ("cpu", "cuda"):
        fail("device", name, "one of 'auto', 'cpu', 'cuda'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA GPU is available here; use 'auto' or 'cpu'")
    return torch.device(name)


def check_device(value: Any) -> str:
    """A known device name that is usable here (``cuda`` needs a GPU)."""
    check_choice("device", value, DEVICES)
    resolve_device(value)
    return value


def check_floats(name: str, value: Any, **kind: bool) -> tuple[float, ...]:
    """A non-empty list of numbers, each checked as ``check_float(name, x, **kind)``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        fail(name, value, "a non-empty list of numbers")
    return tuple(check_float(name, x, **kind) for x in value)
