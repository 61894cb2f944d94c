"""One log line per decision: queue id, client, HELO, sender, recipients, action, score,
symbols, elapsed time — as key=value text or as JSON.

The chain builds the record (:func:`decision_record`) from what the session knows; the
format travels with the chain (``[logging] format``), never through a module global.

A line is bounded whatever the message: a list keeps its first :data:`MAX_LIST_ITEMS` items and
then says how many more there were (``...(+9990 more)``), and a string is cut at
:data:`MAX_VALUE_CHARS` characters (``...(+N chars)``), in both formats.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Literal

from milterfilters.core.context import Auth, Connection, Envelope
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import Decision

log = logging.getLogger("milterfilters.decision")

LogFormat = Literal["text", "json"]

#: items of a list written before the rest is only counted
MAX_LIST_ITEMS = 20
#: characters of one value (or of one list item) written before the rest is only counted
MAX_VALUE_CHARS = 500


def _cut(text: str) -> str:
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]}...(+{len(text) - MAX_VALUE_CHARS} chars)"


def bounded(value: object) -> object:
    """``value`` made short enough for a log line: long strings cut, long lists truncated with
    a count of what was left out (the count is the last item)."""
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, (list, tuple)):
        items = [_cut(str(v)) if isinstance(v, str) else v for v in value[:MAX_LIST_ITEMS]]
        if len(value) > MAX_LIST_ITEMS:
            items.append(f"...(+{len(value) - MAX_LIST_ITEMS} more)")
        return items
    return value


def _quote(value: str) -> str:
    if value and all(c.isprintable() and c not in ' "=' for c in value):
        return value
    return json.dumps(value, ensure_ascii=True)


def decision_record(
    *,
    stage: Stage,
    decision: Decision,
    connection: Connection,
    queue_id: str = "",
    helo: str | None = None,
    auth: Auth | None = None,
    envelope: Envelope | None = None,
    recipients: Sequence[str] = (),
    elapsed: float = 0.0,
) -> dict[str, object]:
    """The fields of one decision's log line, in the order they are written."""
    return {
        "queue_id": queue_id or "-",  # not macro i: it may be the last message's
        "stage": stage.value,
        "client": f"{connection.client_name}[{connection.client_address or 'unknown'}]",
        "helo": helo or "",
        "auth": auth.login if auth else "",
        "from": envelope.mail_from if envelope else "",
        "rcpt": list(recipients),
        "action": decision.action.label,
        "reply": str(decision.reply) if decision.reply else "",
        "score": round(decision.score, 2),
        "symbols": [f"{f.finding.symbol}({f.score:g})" for f in decision.findings],
        "dry_run": [f"{f.finding.symbol}({f.score:g})" for f in decision.dry_run_findings],
        "errors": list(decision.errors),
        "elapsed_ms": round(elapsed * 1000, 1),
    }


def format_record(record: dict[str, object], log_format: LogFormat = "text") -> str:
    """One line: ``key=value`` pairs (empty values left out), or a JSON object; long lists
    and strings are shortened (:func:`bounded`)."""
    record = {key: bounded(value) for key, value in record.items()}
    if log_format == "json":
        return json.dumps(record, ensure_ascii=True)
    parts = []
    for key, value in record.items():
        if value in ("", [], None) and key not in ("action",):
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append(f"{key}={_quote(str(value))}")
    return " ".join(parts)


def log_decision(record: dict[str, object], log_format: LogFormat = "text") -> None:
    """Log one line for a decision record at info level."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", format_record(record, log_format))
