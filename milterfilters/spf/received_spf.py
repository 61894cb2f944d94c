"""The Received-SPF header field (RFC 7208 §9.1), written from typed parts.

::

    header-field   = "Received-SPF:" [CFWS] result FWS [comment FWS] [ key-value-list ] CRLF
    key-value-list = key-value-pair *( ";" [CFWS] key-value-pair ) [";"]
    key-value-pair = key [CFWS] "=" ( dot-atom / quoted-string )

Each value is written as a dot-atom when it is one and as a quoted-string otherwise; the
comment is escaped; text from the client (HELO) or from the sender's DNS (the mechanism, the
problem of a permerror) is printable ASCII by then (:func:`~milterfilters.core.authresults.printable`).
"""

from __future__ import annotations

import re

from milterfilters.core.authresults import fold, printable, quote_comment, quote_string
from milterfilters.spf.pyspf_adapter import SpfCheck

#: RFC 5322 dot-atom-text
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")

#: the result as RFC 7208 §9.1 spells it (case-insensitive; pyspf's capitals kept)
_RESULT_NAMES = {
    "pass": "Pass",
    "fail": "Fail",
    "softfail": "SoftFail",
    "neutral": "Neutral",
    "none": "None",
    "temperror": "TempError",
    "permerror": "PermError",
}


def quote_dot_atom(text: str) -> str:
    """``text`` as a Received-SPF value: a dot-atom, or else a quoted-string."""
    text = printable(text)
    return text if _DOT_ATOM.fullmatch(text) else quote_string(text)


def explanation(check: SpfCheck, ip: str) -> str:
    """The comment's text: what the result says about ``check.domain`` and the client."""
    domain = check.domain
    return {
        "pass": f"domain of {domain} designates {ip} as permitted sender",
        "fail": f"domain of {domain} does not designate {ip} as permitted sender",
        "softfail": f"transitioning domain of {domain} does not designate {ip} as permitted sender",
        "neutral": f"{ip} is neither permitted nor denied by domain of {domain}",
        "none": f"{ip} is neither permitted nor denied by domain of {domain}",
        "temperror": f"temporary error in processing during lookup of {domain}",
        "permerror": f"permanent error in processing domain of {domain}: {check.error}",
    }[check.result]


def received_spf_pairs(check: SpfCheck, ip: str, helo: str, receiver: str) -> list[tuple[str, str]]:
    """The key-value pairs, in pyspf's order; empty values are left out."""
    pairs = [
        ("client-ip", ip),
        ("envelope-from", check.sender if check.identity == "mailfrom" else ""),
        ("helo", helo),
        ("receiver", receiver),
        ("problem", check.problem),
        ("mechanism", check.mechanism),
        ("identity", check.identity),
    ]
    return [(key, value) for key, value in pairs if value]


def render_received_spf(check: SpfCheck, ip: str, helo: str, receiver: str) -> str:
    """The value of a Received-SPF field for ``check`` of client ``ip``, folded."""
    comment = quote_comment(f"{receiver}: {explanation(check, ip)}")
    pairs = "; ".join(f"{k}={quote_dot_atom(v)}" for k, v in received_spf_pairs(check, ip, helo, receiver))
    return fold("Received-SPF", f"{_RESULT_NAMES[check.result]} {comment} {pairs}")
