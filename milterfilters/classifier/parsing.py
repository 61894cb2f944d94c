"""Bounded, never-raising MIME parsing for the classifier.

The standard library's ``email`` package with ``policy=compat32`` is fast and lenient; the
modern default policy can spend seconds on one hostile message. On top of it this module
enforces a size budget (only a prefix of a huge message is read) and a time budget (the
MIME walk stops when it runs out), and turns every decoding problem — bogus charset names,
broken base64, truncated quoted-printable — into replacement characters instead of
exceptions.
"""

from __future__ import annotations

import codecs
import email.parser
import email.policy
import time
from dataclasses import dataclass, field
from email.message import Message as EmailMessage

#: What a classifier reads of one message by default.
DEFAULT_MAX_BYTES = 256 * 1024
#: Seconds the MIME walk may take before the rest of the message is ignored.
DEFAULT_TIME_BUDGET = 0.25
#: Parts looked at, at most (a bomb of thousands of tiny parts stays cheap).
MAX_PARTS = 64
#: Decoded characters kept per text part.
MAX_PART_CHARS = 64 * 1024

_PARSER = email.parser.BytesParser(policy=email.policy.compat32)


@dataclass(frozen=True)
class TextPart:
    """One decoded leaf part that carries text."""

    content_type: str  # e.g. "text/plain"
    charset: str  # declared charset, lower case, "" when none
    transfer_encoding: str  # declared Content-Transfer-Encoding, lower case
    text: str
    charset_unknown: bool = False  # declared charset Python does not know


@dataclass(frozen=True)
class ParsedMail:
    """What the feature extractor needs from a message, decoded and bounded."""

    headers: tuple[tuple[str, str], ...] = ()  # (name, unfolded value), in order
    parts: tuple[TextPart, ...] = ()  # text/* leaves
    structure: tuple[str, ...] = ()  # content type of every part walked, depth-first
    attachments: tuple[str, ...] = ()  # content types of non-text leaves
    raw_size: int = 0
    truncated: bool = False  # only a prefix of the message was read
    over_budget: bool = False  # the time budget stopped the MIME walk
    defects: int = 0  # structural defects the parser noted
    errors: tuple[str, ...] = field(default=())  # decoding problems met (never raised)

    def header(self, name: str) -> str:
        """The first header ``name`` (case-insensitive), or ""."""
        lname = name.lower()
        for key, value in self.headers:
            if key == lname:
                return value
        return ""


def _charset_codec(charset: str) -> str | None:
    try:
        return codecs.lookup(charset).name
    except (LookupError, ValueError, TypeError):
        return None


def _unfold(value: object) -> str:
    """A header value as one line of text (encoded words left as they are)."""
    if not isinstance(value, str):  # compat32 may hand back a Header object
        try:
            value = str(value)
        except Exception:
            return ""
    # compat32 keeps 8-bit header bytes as surrogate escapes: make them real text.
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(value.split())


def decode_payload(part: EmailMessage) -> tuple[str, bool, str]:
    """Decode a leaf's payload: (text, charset_unknown, error). Never raises."""
    try:
        payload = part.get_payload(decode=True)
    except Exception as e:  # compat32 is lenient, but be sure
        return "", False, f"payload: {type(e).__name__}"
    if not isinstance(payload, bytes):
        return "", False, ""
    raw_charset = part.get_param("charset")
    charset = raw_charset if isinstance(raw_charset, str) else ""
    charset = charset.strip().strip('"').lower()
    codec = _charset_codec(charset) if charset else None
    unknown = bool(charset) and codec is None
    payload = payload[: MAX_PART_CHARS * 4]
    try:
        text = payload.decode(codec or "utf-8", "replace")
    except Exception:  # a codec that fails on its own terms (some stateful ones do)
        text = payload.decode("latin-1")
    if codec is None and "\ufffd" in text:
        # Undeclared 8-bit text is most often Latin-1 (or cp1252) in the wild.
        text = payload.decode("cp1252", "replace")
    return text[:MAX_PART_CHARS], unknown, ""


def parse_mail(
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> ParsedMail:
    """Parse at most ``max_bytes`` of ``raw`` within ``time_budget`` seconds; never raises."""
    started = time.perf_counter()
    raw_size = len(raw)
    if raw.startswith(b"From "):  # mbox envelope line
        raw = raw.partition(b"\n")[2]
    truncated = len(raw) > max_bytes
    if truncated:
        raw = raw[:max_bytes]
    try:
        msg = _PARSER.parsebytes(raw)
    except Exception as e:
        return ParsedMail(raw_size=raw_size, truncated=truncated, errors=(f"parse: {type(e).__name__}",))
    headers = tuple((str(k).lower(), _unfold(v)) for k, v in msg.items())
    parts: list[TextPart] = []
    structure: list[str] = []
    attachments: list[str] = []
    errors: list[str] = []
    defects = 0
    over_budget = False
    try:
        for count, part in enumerate(msg.walk()):
            if count >= MAX_PARTS or time.perf_counter() - started > time_budget:
                over_budget = True
                break
            defects += len(part.defects)
            ctype = part.get_content_type()
            structure.append(ctype)
            if part.is_multipart():
                continue
            if part.get_content_maintype() == "text":
                text, unknown, error = decode_payload(part)
                if error:
                    errors.append(error)
                charset = part.get_param("charset")
                parts.append(
                    TextPart(
                        content_type=ctype,
                        charset=charset.lower() if isinstance(charset, str) else "",
                        transfer_encoding=str(part.get("content-transfer-encoding", "")).strip().lower(),
                        text=text,
                        charset_unknown=unknown,
                    )
                )
            else:
                attachments.append(ctype)
    except Exception as e:  # a structure compat32 cannot walk: keep what we have
        errors.append(f"walk: {type(e).__name__}")
    return ParsedMail(
        headers=headers,
        parts=tuple(parts),
        structure=tuple(structure),
        attachments=tuple(attachments),
        raw_size=raw_size,
        truncated=truncated,
        over_budget=over_budget,
        defects=defects,
        errors=tuple(errors),
    )
