"""An example milterfilters plugin: a finding for each Subject that matches a pattern.

Install it beside milterfilters (``.venv/bin/pip install examples/plugin-example``), then::

    [subject_rules]
    patterns = ["(?i)\\bviagra\\b", "(?i)act now"]

    [scores]
    SUBJECT_RULE = 4.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from milterfilters import Context, Filter, Finding, Services, Verdict, doc


@dataclass(frozen=True)
class SubjectRulesOptions:
    patterns: tuple[str, ...] = doc("regular expressions searched in the Subject", default_factory=tuple)

    def validate(self) -> None:
        for p in self.patterns:
            try:
                re.compile(p)
            except re.error as e:  # a bad pattern is a configuration error at start-up
                raise ValueError(f"bad pattern {p!r}: {e}") from None


class SubjectRulesFilter(Filter):
    """Reports SUBJECT_RULE when the Subject matches one of the configured patterns."""

    name = "subject_rules"
    Options = SubjectRulesOptions
    symbols: ClassVar[dict[str, float]] = {"SUBJECT_RULE": 3.0}
    needs_headers = True
    options: SubjectRulesOptions

    def __init__(self, options: SubjectRulesOptions, services: Services) -> None:
        super().__init__(options, services)
        # compiled once at start-up and shared by every connection (no per-message state)
        self.compiled = [re.compile(p) for p in options.patterns]

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        subject = ctx.message.get("Subject") or ""
        hits = [rx.pattern for rx in self.compiled if rx.search(subject)]
        if not hits:
            return None
        return Verdict.found(Finding("SUBJECT_RULE", f"subject matches {', '.join(hits)}"))
