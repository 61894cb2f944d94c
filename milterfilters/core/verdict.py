"""Typed verdict values: actions, SMTP replies, findings, authentication results, decisions.

Everything here is a frozen value. Combining verdicts is a ``max`` over :class:`Action`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field


class Action(enum.IntEnum):
    """What to do with a transaction, ordered by severity so that combining is ``max``.

    ``CONTINUE`` means no objection (go on to the next stage); ``ACCEPT`` is the final
    verdict for a clean message. ``TEMPFAIL`` ranks below ``DISCARD`` and ``REJECT``:
    "could not judge" yields to "judged bad", but beats every way of letting mail through.
    """

    CONTINUE = 0
    ACCEPT = 1
    TAG = 2
    QUARANTINE = 3
    TEMPFAIL = 4
    DISCARD = 5
    REJECT = 6

    @property
    def label(self) -> str:
        """The action as a word: ``accept``, ``reject``, ..."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.label

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)

    @classmethod
    def parse(cls, text: str) -> Action:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown action {text!r}; expected one of {', '.join(a.label for a in cls)}"
            ) from None


_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


class ReplyError(ValueError):
    """An SMTP reply that cannot be sent as given."""


@dataclass(frozen=True)
class SmtpReply:
    """An SMTP reply: 3-digit code, RFC 3463 enhanced status code, one line of text.

    Validated on construction: the code is 4xx or 5xx, the enhanced code's class matches
    the code's first digit, and the text has no CR, LF or other control characters.
    """

    code: int
    enhanced: str
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, int) or not 400 <= self.code <= 599:
            raise ReplyError(f"SMTP reply code must be 4xx or 5xx, got {self.code!r}")
        m = _ENHANCED.match(self.enhanced)
        if not m:
            raise ReplyError(f"enhanced status code must look like 5.7.1, got {self.enhanced!r}")
        if m.group(1) != str(self.code)[0]:
            raise ReplyError(f"enhanced status {self.enhanced} does not match reply code {self.code}")
        if any(ord(c) < 32 or ord(c) == 127 for c in self.text):
            raise ReplyError("SMTP reply text must not contain CR, LF or control characters")
        if len(self.text) > 400:
            raise ReplyError("SMTP reply text is longer than 400 characters")

    @property
    def is_temporary(self) -> bool:
        return self.code < 500

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "enhanced": self.enhanced, "text": self.text}

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


DEFAULT_TEMPFAIL = SmtpReply(451, "4.7.1", "Service temporarily unavailable, try again later")
DEFAULT_REJECT = SmtpReply(550, "5.7.1", "Message rejected by policy")
SPAM_REJECT = SmtpReply(554, "5.7.1", "Message rejected as spam")


def reply_matches(action: Action, reply: SmtpReply | None) -> bool:
    """Whether ``reply`` may accompany ``action`` (5xx with reject, 4xx with tempfail)."""
    if reply is None:
        return True
    if action is Action.REJECT:
        return not reply.is_temporary
    if action is Action.TEMPFAIL:
        return reply.is_temporary
    return False


@dataclass(frozen=True)
class Finding:
    """A named symbol a filter found, e.g. ``SPF_FAIL``; the policy gives it a weight.

    ``factor`` scales the configured weight (a classifier probability, say); filters never
    emit a score of their own.
    """

    symbol: str
    detail: str = ""
    factor: float = 1.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.symbol):
            raise ValueError(f"symbol names are UPPER_SNAKE_CASE, got {self.symbol!r}")


@dataclass(frozen=True)
class AuthResult:
    """One method result for the Authentication-Results header (RFC 8601).

    ``properties`` are ``ptype.property = value`` pairs such as ``smtp.mailfrom``.
    """

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    comment: str = ""


class HeaderPosition(enum.Enum):
    """Where an added header goes: appended at the bottom, or inserted at the top."""

    BOTTOM = "bottom"
    TOP = "top"


_LINE_BREAK = re.compile(r"\s*[\r\n]+\s*")


def unfold(text: str) -> str:
    """``text`` on one line: each line break, with the white space around it, becomes a space.

    For header values built from what a client or sender controls (a HELO name, a DKIM tag
    with folding white space), which must not carry line breaks into a field we add.
    """
    return _LINE_BREAK.sub(" ", text)


@dataclass(frozen=True)
class HeaderAdd:
    """Add a header field to the message."""

    name: str
    value: str
    position: HeaderPosition = HeaderPosition.BOTTOM

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[!-9;-~]+", self.name):
            raise ValueError(f"invalid header field name {self.name!r}")
        if "\r" in self.value or re.search(r"\n(?![ \t])", self.value):
            raise ValueError(f"header {self.name} value has a bare line break")


@dataclass(frozen=True)
class HeaderDelete:
    """Delete the ``occurrence``-th (1-based) field called ``name`` in the original message."""

    name: str
    occurrence: int


@dataclass(frozen=True)
class Verdict:
    """What one filter says about one stage: findings, and optionally a direct action.

    ``action`` is ``CONTINUE`` for "no direct opinion": the policy then scores the findings.
    A direct ``REJECT``/``TEMPFAIL``/``DISCARD`` is hard policy and carries a reply.
    """

    findings: tuple[Finding, ...] = ()
    action: Action = Action.CONTINUE
    reply: SmtpReply | None = None
    headers: tuple[HeaderAdd | HeaderDelete, ...] = ()
    auth_results: tuple[AuthResult, ...] = ()
    annotations: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reply is not None and not reply_matches(self.action, self.reply):
            raise ReplyError(f"reply {self.reply} does not fit action {self.action.label}")

    @classmethod
    def found(cls, *findings: Finding, **kwargs: object) -> Verdict:
        """A verdict that only reports findings."""
        return cls(findings=tuple(findings), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def reject(cls, reply: SmtpReply, *findings: Finding) -> Verdict:
        return cls(findings=tuple(findings), action=Action.REJECT, reply=reply)

    @classmethod
    def tempfail(cls, reply: SmtpReply, *findings: Finding) -> Verdict:
        return cls(findings=tuple(findings), action=Action.TEMPFAIL, reply=reply)


NO_OPINION = Verdict()


@dataclass(frozen=True)
class ScoredFinding:
    """A finding with the weight the policy gave it, and the filter that reported it."""

    filter: str
    finding: Finding
    score: float

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.finding.symbol,
            "score": round(self.score, 4),
            "detail": self.finding.detail,
            "filter": self.filter,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of a stage (or of the whole message at end of data).

    The adapter turns it into milter calls; ``check`` prints it.
    """

    action: Action
    reply: SmtpReply | None = None
    score: float = 0.0
    findings: tuple[ScoredFinding, ...] = ()
    dry_run_findings: tuple[ScoredFinding, ...] = ()
    headers: tuple[HeaderAdd | HeaderDelete, ...] = ()
    subject_prefix: str = ""
    quarantine_reason: str = ""
    decided_by: str = ""
    errors: tuple[str, ...] = ()

    @property
    def added_headers(self) -> tuple[HeaderAdd, ...]:
        return tuple(h for h in self.headers if isinstance(h, HeaderAdd))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(f.finding.symbol for f in self.findings)

    @property
    def refuses(self) -> bool:
        """True when the MTA must not take the message (reject, tempfail)."""
        return self.action in (Action.REJECT, Action.TEMPFAIL)
