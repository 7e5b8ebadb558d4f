"""Verdicts: a claim's measured numbers against a stated criterion, never typed by hand."""

from __future__ import annotations

from dataclasses import dataclass

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim: its status, the criterion it was judged by, and the evidence
    (one line per check, each saying what was measured and whether it passed)."""

    claim: str
    status: str
    criterion: str
    evidence: tuple[str, ...]

    def markdown(self) -> str:
        lines = [f"**Verdict: {self.status}.** Criterion: {self.criterion}", ""]
        lines += [f"- {line}" for line in self.evidence]
        return "\n".join(lines)


def judge(claim: str, criterion: str, checks: dict[str, tuple[bool, str]]) -> Verdict:
    """All checks pass: reproduced; some: partly; none: not reproduced.

    ``checks`` maps a check's name to (passed, what was measured)."""
    passed = [ok for ok, _ in checks.values()]
    status = REPRODUCED if all(passed) else PARTLY if any(passed) else NOT_REPRODUCED
    evidence = tuple(
        f"{'✓' if ok else '✗'} {name}: {measured}" for name, (ok, measured) in checks.items()
    )
    return Verdict(claim, status, criterion, evidence)
