"""The policy: symbol weights turn findings into a score; thresholds turn a score into an action."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from milterfilters.core.verdict import Action, Finding, ScoredFinding, SmtpReply


@dataclass(frozen=True)
class Policy:
    """Weights and thresholds. A threshold of ``None`` is never reached.

    A score reaches a threshold when it is greater than or equal to it.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    tag: float | None = 6.0
    quarantine: float | None = None
    reject: float | None = 15.0
    subject_prefix: str = ""
    reject_reply: SmtpReply = SmtpReply(554, "5.7.1", "Message rejected as spam")

    def score(self, filter_name: str, finding: Finding) -> ScoredFinding:
        """Weigh one finding: configured weight times the finding's factor (0 if unweighted)."""
        return ScoredFinding(
            filter=filter_name,
            finding=finding,
            score=self.weights.get(finding.symbol, 0.0) * finding.factor,
        )

    @staticmethod
    def total(findings: Iterable[ScoredFinding]) -> float:
        return round(sum(f.score for f in findings), 6)

    def action_for(self, score: float) -> Action:
        """The action the thresholds give a total score."""
        if self.reject is not None and score >= self.reject:
            return Action.REJECT
        if self.quarantine is not None and score >= self.quarantine:
            return Action.QUARANTINE
        if self.tag is not None and score >= self.tag:
            return Action.TAG
        return Action.ACCEPT
