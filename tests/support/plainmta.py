"""An MTA for pymilter's ``TestCtx``: drives our milter's callbacks without a real MTA."""

from __future__ import annotations

from typing import ClassVar

import Milter
from Milter import testctx

NO_REPLY_BITS = (
    Milter.P_NR_CONN
    | Milter.P_NR_HELO
    | Milter.P_NR_MAIL
    | Milter.P_NR_RCPT
    | Milter.P_NR_DATA
    | Milter.P_NR_UNKN
    | Milter.P_NR_EOH
    | Milter.P_NR_BODY
    | Milter.P_NR_HDR
)


class PlainMTA(testctx.TestCtx):  # type: ignore[misc]
    """An MTA that offers neither no-reply steps nor macro lists (TestCtx's flow assumes both off)."""

    __test__ = False

    offered: ClassVar[list[int]] = [
        Milter.CURR_ACTS & ~Milter.SETSYMLIST,
        0x1FFFFF & ~NO_REPLY_BITS & ~Milter.P_HDR_LEADSPC,
        0,
        0,
    ]

    def _negotiate(self) -> int:
        self._body = None
        self._priv = None
        self._stage = -1
        self._opts = list(self.offered)
        rc: int = Milter.negotiate_callback(self, self._opts)
        assert rc == Milter.CONTINUE
        self._protocol = self._opts[1]
        return rc

    def __init__(self) -> None:
        super().__init__(logfile="/dev/null")
        self.added: list[tuple[str, str, int]] = []
        self.changed: list[tuple[str, int, str | None]] = []

    def addheader(self, field: str, value: str, idx: int) -> None:
        self.added.append((field, value, idx))

    def chgheader(self, field: str, idx: int, value: str | None) -> None:
        self.changed.append((field, idx, value))
