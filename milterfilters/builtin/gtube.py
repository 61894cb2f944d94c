"""GTUBE: the Generic Test for Unsolicited Bulk Email, an admin's first end-to-end check."""

from __future__ import annotations

from typing import ClassVar

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.verdict import Finding, Verdict

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class GtubeFilter(Filter):
    """Finds the GTUBE test string in the body (weighted to reject by default)."""

    name = "gtube"
    symbols: ClassVar[dict[str, float]] = {"GTUBE": 1000.0}
    needs_body = True

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        # The test string may be split by a line break in a folded body; SpamAssassin
        # matches it in the decoded text, but the plain string is what admins send.
        if GTUBE in ctx.message.body:
            return Verdict.found(Finding("GTUBE", "GTUBE test string in body"))
        return None
