"""Per-call deadlines: how a filter's ``timeout`` stops the work instead of judging it afterwards.

The chain hands every filter call a :class:`Deadline` (``ctx.deadline``): the moment the call
started plus the filter's ``timeout``, on the chain's clock. Long loops in a filter check it
(:meth:`Deadline.check`) between bounded steps — DKIM hashes the body in chunks, verifies one
signature and asks DNS one name at a time — and :class:`DeadlineExceeded` ends the call; the
chain turns it into the filter's ``on_error``, logged and counted as a timeout, at once.

Why cooperative, and not a watchdog thread or a process per call: CPython cannot stop a
thread, so a watchdog could only *answer* at the deadline while the runaway call went on
holding the GIL — the milter would still pay for it, and every other connection with it. A
process per call (or a pool) could be killed, but copies each message (10 MB) across a pipe,
needs a fork-safe start method beside libmilter's threads, and costs more per message than the
checks it guards; most filters finish in a millisecond. So the work itself stops: each costly
step is bounded (a body chunk, one signature's crypto, one DNS lookup under the resolver's own
timeout), and the chain still compares the elapsed time with ``timeout`` when a call returns,
for filters that never look at their deadline. The bound on a message is thus every filter's
``timeout`` plus the longest single step of the one that overran.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class DeadlineExceeded(Exception):
    """A filter call ran past its deadline; the chain applies the filter's ``on_error``.

    Deliberately not a ``TimeoutError``/``OSError``: code that maps network errors to
    temporary DNS results must not swallow it.
    """


@dataclass(frozen=True)
class Deadline:
    """A point on ``clock`` after which the current filter call must stop.

    ``Deadline()`` never expires (code run outside a chain, and tests).
    """

    expires_at: float = math.inf
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now on ``clock``."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left (0 when expired, ``inf`` for no deadline)."""
        if self.expires_at == math.inf:
            return math.inf
        return max(0.0, self.expires_at - self.clock())

    @property
    def expired(self) -> bool:
        return self.expires_at != math.inf and self.clock() >= self.expires_at

    def check(self, what: str = "") -> None:
        """Raise :class:`DeadlineExceeded` if the deadline has passed (``what`` says where)."""
        if self.expired:
            raise DeadlineExceeded(f"deadline passed{' during ' + what if what else ''}")


#: The deadline of code run outside a chain: never expires.
NO_DEADLINE = Deadline()
