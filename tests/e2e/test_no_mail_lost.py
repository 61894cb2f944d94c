"""No mail is lost under faults: clients retrying like an MTA queue send uniquely identified
messages (some of them hostile shapes: a 126 KB header field, a quoted local part holding
``@``, 8-bit garbage headers, deep MIME, a NUL byte, bare LF) to a private Postfix +
milterfilters while the worker is SIGKILLed, the milter is stopped and crashed and restarted,
reloaded with SIGHUP, its DNS stops answering and its SPF filter fails on some messages. Every
message a client was told was accepted must be in the Maildir exactly once; a hostile one may
instead be refused with a reason, and none may be left undecided. ``benchmarks/fault_soak.py``
runs the same at length."""

from __future__ import annotations

import pytest

from .mta import StackPool
from .soak import run_soak

pytestmark = pytest.mark.e2e


def test_every_accepted_message_is_delivered_exactly_once_under_faults(stack_pool: StackPool) -> None:
    result = run_soak(stack_pool, messages=60, clients=6, fault_pause=0.5, max_tries=40, retry_delay=0.3)
    ledger = result.ledger
    report = "\n".join(result.lines())
    assert not ledger.lost, f"accepted but never delivered: {[x.message_id for x in ledger.lost]}\n{report}"
    assert not ledger.duplicated, (
        f"delivered more than once: {[x.message_id for x in ledger.duplicated]}\n{report}"
    )
    assert not ledger.rejected_clean, (
        f"clean mail refused: {[x.permanent for x in ledger.rejected_clean]}\n{report}"
    )
    assert not ledger.rejected_without_reason, report
    assert not ledger.delivered_unacknowledged and ledger.strangers == 0, report
    # every message got a decision in the end (hostile ones: delivered or refused with a reason),
    # none was held in its client's queue, and the faults really were met on the way
    assert not ledger.held, f"never decided: {[(x.kind, x.message_id) for x in ledger.held]}\n{report}"
    assert {x.kind for x in ledger.letters} >= {"clean", "big-header", "quoted-at", "bare-lf"}, report
    assert result.faults.done["worker-kill"] >= 1 and result.worker_restarts >= 1, report
    assert result.faults.done["reload"] >= 1, report
    assert result.temporary > 0 and result.filter_errors > 0, report
