"""Security regression: a message that makes a filter loop (a costly body, a slow lookup) must
not cost the milter more than the filter's ``timeout``. The chain hands each call a deadline;
a filter that checks it is stopped there, and the message gets the filter's ``on_error`` at
once, logged and counted; another connection is not held up meanwhile."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import pytest

from milterfilters import (
    Action,
    Chain,
    ChainLink,
    Context,
    Filter,
    FilterSettings,
    Finding,
    Verdict,
    evaluate,
)
from milterfilters.core.deadline import NO_DEADLINE, Deadline, DeadlineExceeded
from milterfilters.core.services import Services

MSG = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
TIMEOUT = 0.3


class LoopingFilter(Filter):
    """Loops for ever at end of data, checking its deadline (as DKIM hashing does)."""

    name = "looping"
    symbols: ClassVar[dict[str, float]] = {"LOOPED": 100.0}

    def eom(self, ctx: Context) -> Verdict | None:
        n = 0
        while True:
            n += sum(range(1000))
            ctx.deadline.check("looping")


class QuickFilter(Filter):
    name = "quick"

    def eom(self, ctx: Context) -> Verdict | None:
        return Verdict.found(Finding("QUICK"))


def chain_with(filter_class: type[Filter], on_error: str = "tempfail") -> Chain:
    settings = FilterSettings(timeout=TIMEOUT, on_error=on_error)  # type: ignore[arg-type]
    return Chain([ChainLink(filter_class(None, Services()), settings)])


def test_filter_looping_past_its_timeout_gets_on_error_promptly() -> None:
    chain = chain_with(LoopingFilter)
    start = time.monotonic()
    out = evaluate(chain, MSG)
    elapsed = time.monotonic() - start
    assert out.action is Action.TEMPFAIL
    assert elapsed < TIMEOUT + 0.5, f"stopped only after {elapsed:.2f}s"
    assert chain.metrics.get("filter_timeouts_total", filter="looping") == 1
    assert chain.metrics.get("filter_errors_total", filter="looping") == 1
    assert any("timed out" in e and "looping" in e for e in out.decision.errors)


@pytest.mark.parametrize(("on_error", "expected"), [("ignore", Action.ACCEPT), ("reject", Action.REJECT)])
def test_looping_filter_gets_its_own_on_error(on_error: str, expected: Action) -> None:
    assert evaluate(chain_with(LoopingFilter, on_error), MSG).action is expected


def test_second_session_is_not_held_up_by_a_looping_filter() -> None:
    looping, quick = chain_with(LoopingFilter), chain_with(QuickFilter)
    quick_times: list[float] = []
    looping_done = threading.Event()

    def attack() -> None:
        evaluate(looping, MSG)
        looping_done.set()

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        while not looping_done.is_set() and len(quick_times) < 20:
            start = time.monotonic()
            assert evaluate(quick, MSG).action is Action.ACCEPT
            quick_times.append(time.monotonic() - start)
        finished_during_attack = not looping_done.is_set()
    finally:
        attacker.join(TIMEOUT + 5)
    assert not attacker.is_alive()
    assert finished_during_attack, "the quick session waited for the looping one"
    assert max(quick_times) < TIMEOUT, f"a quick message took {max(quick_times):.2f}s"


def test_deadline_expires_on_its_clock() -> None:
    now = [10.0]
    deadline = Deadline.after(2.0, lambda: now[0])
    deadline.check()
    assert deadline.remaining() == 2.0
    now[0] = 12.0
    assert deadline.expired and deadline.remaining() == 0.0
    with pytest.raises(DeadlineExceeded, match="during hashing"):
        deadline.check("hashing")


def test_no_deadline_never_expires() -> None:
    assert not NO_DEADLINE.expired
    NO_DEADLINE.check()


def test_the_filter_sees_the_deadline_of_its_timeout() -> None:
    seen: list[float] = []

    class Peek(Filter):
        name = "peek"

        def eom(self, ctx: Context) -> Verdict | None:
            seen.append(ctx.deadline.remaining())
            return None

    evaluate(chain_with(Peek), MSG)
    assert seen and 0 < seen[0] <= TIMEOUT
