"""One log line per decision: queue id, client, HELO, sender, recipients, action, score,
symbols, elapsed time — as key=value text or as JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from milterfilters.stages import Stage
from milterfilters.verdict import Decision

if TYPE_CHECKING:
    from milterfilters.chain import Session

log = logging.getLogger("milterfilters.decision")

#: "text" or "json"; set from [logging] format at start-up
LOG_FORMAT = "text"


def _quote(value: str) -> str:
    if value and all(c.isprintable() and c not in ' "=' for c in value):
        return value
    return json.dumps(value, ensure_ascii=True)


def decision_record(
    session: Session, stage: Stage, decision: Decision, recipients: Sequence[str], elapsed: float
) -> dict[str, object]:
    conn = session.connection
    return {
        "queue_id": session.queue_id or "-",  # not macro i: it may be the last message's
        "stage": stage.value,
        "client": f"{conn.client_name}[{conn.client_address or 'unknown'}]",
        "helo": session.helo_name or "",
        "auth": session.auth.login if session.auth else "",
        "from": session.envelope.mail_from if session.envelope else "",
        "rcpt": list(recipients),
        "action": decision.action.label,
        "reply": str(decision.reply) if decision.reply else "",
        "score": round(decision.score, 2),
        "symbols": [f"{f.finding.symbol}({f.score:g})" for f in decision.findings],
        "dry_run": [f"{f.finding.symbol}({f.score:g})" for f in decision.dry_run_findings],
        "errors": list(decision.errors),
        "elapsed_ms": round(elapsed * 1000, 1),
    }


def format_record(record: dict[str, object]) -> str:
    parts = []
    for key, value in record.items():
        if value in ("", [], None) and key not in ("action",):
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append(f"{key}={_quote(str(value))}")
    return " ".join(parts)


def log_decision(
    session: Session,
    stage: Stage,
    decision: Decision,
    *,
    recipients: Sequence[str] = (),
    elapsed: float = 0.0,
) -> None:
    """Log one line for ``decision``."""
    if not log.isEnabledFor(logging.INFO):
        return
    record = decision_record(session, stage, decision, recipients, elapsed)
    if LOG_FORMAT == "json":
        log.info("%s", json.dumps(record, ensure_ascii=True))
    else:
        log.info("%s", format_record(record))
