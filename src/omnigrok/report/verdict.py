"""Verdicts: a claim's measured numbers against a stated criterion, never typed by hand.

A claim is judged only where it can be tested: its preconditions (e.g. "the unconstrained
baseline shows a delay to remove") must hold first. A failed precondition makes the claim
"not tested", never "partly reproduced": passing a precondition is not evidence for the claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omnigrok.report.page import collapsed

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"
NOT_TESTED = "not tested"
STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTED)

Checks = Mapping[str, tuple[bool, str]]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim: its status, the criterion it was judged by, and the evidence
    (one line per precondition and check, each saying what was measured and whether it
    passed)."""

    claim: str
    status: str
    criterion: str
    evidence: tuple[str, ...]

    def markdown(self) -> str:
        """The status, with the criterion and the evidence folded under it (the line counts the
        passed and failed lines): a page's first screen shows what was found, a click shows
        why. HTML, not markdown, in the status line: it is a ``<summary>``."""
        passed = sum(line.startswith("✓") for line in self.evidence)
        failed = sum(line.startswith("✗") for line in self.evidence)
        status = f"<strong>Verdict: {self.status}.</strong>"
        counts = f"Criterion and evidence ({passed} ✓, {failed} ✗)"
        body = [f"Criterion: {self.criterion}", ""] + [f"- {line}" for line in self.evidence]
        return collapsed(f"{status} {counts}", "\n".join(body))


def _lines(checks: Checks, prefix: str = "") -> list[str]:
    return [f"{'✓' if ok else '✗'} {prefix}{name}: {what}" for name, (ok, what) in checks.items()]


def judge(
    claim: str,
    criterion: str,
    checks: Checks,
    preconditions: Checks | None = None,
    notes: Sequence[str] = (),
) -> Verdict:
    """A failed precondition: not tested. Otherwise all checks pass: reproduced; some: partly;
    none: not reproduced.

    ``checks`` and ``preconditions`` map a name to (passed, what was measured); ``notes`` are
    evidence lines that judge nothing (e.g. a control that does not apply to this setup)."""
    if not checks:
        raise ValueError(f"{claim}: a verdict needs at least one check")
    preconditions = preconditions or {}
    passed = [bool(ok) for ok, _ in checks.values()]
    if not all(ok for ok, _ in preconditions.values()):
        status = NOT_TESTED
    else:
        status = REPRODUCED if all(passed) else PARTLY if any(passed) else NOT_REPRODUCED
    counted = "" if status != NOT_TESTED else "(not counted: a precondition failed) "
    evidence = _lines(preconditions, "precondition: ") + _lines(checks, counted)
    evidence += [f"· {note}" for note in notes]
    return Verdict(claim, status, criterion, tuple(evidence))
