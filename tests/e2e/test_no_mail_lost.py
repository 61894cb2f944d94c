"""No mail is lost under faults: clients retrying like an MTA queue send uniquely identified
messages to a private Postfix + milterfilters while the worker is SIGKILLed, the milter is
stopped and crashed and restarted, reloaded with SIGHUP, its DNS stops answering and its SPF
filter fails on some messages. Every message a client was told was accepted must be in the
Maildir exactly once. ``benchmarks/fault_soak.py`` runs the same at length."""

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
    assert not ledger.rejected, f"clean mail refused: {[x.permanent for x in ledger.rejected]}\n{report}"
    assert not ledger.delivered_unacknowledged and ledger.strangers == 0, report
    # every message got through in the end, and the faults really were met on the way
    assert len(ledger.accepted) == len(ledger.letters), report
    assert result.faults.done["worker-kill"] >= 1 and result.worker_restarts >= 1, report
    assert result.faults.done["reload"] >= 1, report
    assert result.temporary > 0 and result.filter_errors > 0, report
