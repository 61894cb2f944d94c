"""Message size guard: refuse messages larger than an admin-set limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.schema import doc
from milterfilters.core.verdict import Finding, SmtpReply, Verdict


@dataclass(frozen=True)
class SizeOptions:
    max_bytes: int = doc(
        "largest message (headers + body) accepted, in bytes; 0 = no limit", 50 * 1024 * 1024
    )

    def validate(self) -> None:
        if self.max_bytes < 0:
            raise ValueError("max_bytes must not be negative")


class SizeFilter(Filter):
    """Rejects messages over max_bytes at MAIL (SIZE= parameter) or at end of data."""

    name = "size"
    Options = SizeOptions
    symbols: ClassVar[dict[str, float]] = {"SIZE_LIMIT_EXCEEDED": 0.0}
    needs_body = True  # the body must flow through the milter to be counted
    options: SizeOptions

    def _reject(self, size: int) -> Verdict:
        return Verdict.reject(
            SmtpReply(552, "5.3.4", f"Message size exceeds fixed limit of {self.options.max_bytes} bytes"),
            Finding("SIZE_LIMIT_EXCEEDED", f"{size} bytes > {self.options.max_bytes}"),
        )

    def mail(self, ctx: Context) -> Verdict | None:
        limit = self.options.max_bytes
        if not limit or ctx.envelope is None:
            return None
        for arg in ctx.envelope.mail_args:
            key, _, value = arg.partition("=")
            if key.upper() == "SIZE" and value.isdigit() and int(value) > limit:
                return self._reject(int(value))
        return None

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        size = ctx.message.size + ctx.message.header_bytes
        if self.options.max_bytes and size > self.options.max_bytes:
            return self._reject(size)
        return None
