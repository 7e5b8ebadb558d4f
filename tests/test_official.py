"""The comparison with the authors' code: verdicts on synthetic records, the committed record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from omnigrok.report import official


def record(**overrides) -> dict:
    """A record where every case agrees: step 1372 vs 1400 (2%), accuracies 0.001 apart."""
    cases = {
        "large_init": {
            "0": {
                "train accuracy 0.95 at step": {"kind": "step", "official": 1400, "package": 1372},
                "test accuracy at step 20,000": {
                    "kind": "acc",
                    "official": 0.467,
                    "package": 0.473,
                },
                "norm at step 20,000 / at init": {
                    "kind": "ratio",
                    "official": 0.793,
                    "package": 0.788,
                },
            }
        },
        "held_alpha1": {
            "0": {"best test accuracy": {"kind": "acc", "official": 0.91, "package": 0.911}}
        },
        "held_alpha8": {
            "0": {"best test accuracy": {"kind": "acc", "official": 0.12, "package": 0.13}}
        },
    }
    cases.update(overrides)
    return {"official_commit": "3a0a573", "package_commit": "abc", "cases": cases}


def test_a_record_within_every_tolerance_agrees():
    assert official.verdict(record()) == ("agrees", "all 5 quantities within tolerance")


def test_one_quantity_outside_its_tolerance_differs_naming_it():
    off = {"0": {"best test accuracy": {"kind": "acc", "official": 0.91, "package": 0.87}}}
    status, why = official.verdict(record(held_alpha1=off))
    assert status == "differs" and "held_alpha1 seed 0 best test accuracy" in why
    assert (
        "| 0 | best test accuracy | 0.910 | 0.870 | 0.0400 | **no** (≤ 0.02) |"
        in official.table(record(held_alpha1=off), "held_alpha1")
    )


def test_a_difference_at_the_bound_agrees_despite_float32_storage():
    at_bound = {"kind": "acc", "official": 0.1942, "package": float(np.float32(0.1742))}
    assert official.verdict(record(held_alpha8={"0": {"best test accuracy": at_bound}}))[0] == (
        "agrees"
    )


def test_a_missing_case_is_incomplete_and_never_on_both_sides_agrees():
    rec = record()
    del rec["cases"]["held_alpha8"]
    assert official.verdict(rec) == ("incomplete", "not run: held_alpha8")
    never = {"kind": "step", "official": math.inf, "package": math.inf}
    rec = record(large_init={"1": {"train accuracy 0.95 at step": never}})
    assert official.verdict(rec)[0] == "agrees"


def test_a_bad_record_is_a_clear_error(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"cases": {}}))
    with pytest.raises(ValueError, match="lacks 'official_commit'"):
        official.load(bad)
    with pytest.raises(ValueError, match="cannot be read"):
        official.load(tmp_path / "none.json")


def test_the_committed_record_holds_the_mnist_cases_at_two_seeds():
    rec = official.load()
    assert set(official.CASES) <= set(rec["cases"]), official.missing_cases(rec)
    for case in official.CASES:
        assert len(rec["cases"][case]) >= 2, f"{case}: fewer than two seeds"
    assert official.verdict(rec)[0] in ("agrees", "differs")
