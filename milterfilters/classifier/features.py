"""Feature extraction: what the classifier sees of a message.

Two kinds of tokens come out of a :class:`~milterfilters.classifier.parsing.ParsedMail`:

* **words** of the decoded subject (prefixed ``s:``) and body (HTML converted to text),
  the vocabulary a reader sees;
* **traits** (prefixed ``@``) that carry across years and languages: MIME structure,
  charsets and transfer encodings, the HTML/text balance and HTML tricks, URL and domain
  traits, a few header tokens (sender domain, mailer family) and header anomalies,
  obfuscated words, shouting.

Only the header fields named here are read. Everything else — in particular ``X-Spam-*``
verdicts, scores that list servers or other filters added, ``Received`` paths and
mail-client export headers — is ignored, so a model cannot learn a label another filter
already wrote into the message.
"""

from __future__ import annotations

import email.header
import email.utils
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

from milterfilters.classifier.parsing import ParsedMail

#: Characters of decoded body text that are tokenized (a bounded prefix).
MAX_TEXT_CHARS = 24_000
#: Bytes of an HTML part scanned for tags and links.
MAX_HTML_CHARS = 96_000

_WORD = re.compile(r"[^\W_]{2,24}|\$[\d,.]+|[!?]{2,}")
_URL = re.compile(r"""(?i)\b(?:https?://|www\.)[^\s<>"'()\[\]{}]{1,300}""")
_HREF = re.compile(
    r"""(?is)<a\b[^>]{0,200}?\bhref\s*=\s*["']?([^"'\s>]{1,400})["']?[^>]{0,200}>(.{0,200}?)</a"""
)
_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]{0,10})\b")
_HIDDEN = re.compile(
    r"""(?i)display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*[0-2]px|<font[^>]{0,100}size=["']?[01]\b"""
    r"""|color\s*[:=]\s*["']?#?(?:fff(?:fff)?|white)\b"""
)
_COMMENT_IN_WORD = re.compile(r"[A-Za-z]<!--[^<>]{0,40}-->[A-Za-z]")
_OBFUSCATED = re.compile(r"(?i)\b(?=[a-z0-9@$|]*[a-z])(?=[a-z0-9@$|]*[0@$|])[a-z0-9@$|]{4,}\b")
_SPACED_WORD = re.compile(r"(?:\b[A-Za-z][ ._*-]){4,}[A-Za-z]\b")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_MAILER_WORD = re.compile(r"[a-z]{3,}")
_TRAILING_ID = re.compile(r"\s{3,}\S{3,}$|[\s_-][a-z0-9]{6,}$")
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go"})
_HTML_TAGS_OF_INTEREST = frozenset(
    {"table", "font", "img", "form", "input", "script", "iframe", "center", "map", "area", "style", "object"}
)
#: Header fields whose absence is a trait. Besides these, only X-Mailer and User-Agent are read.
_EXPECTED_HEADERS = ("from", "reply-to", "to", "cc", "subject", "date", "message-id")


@dataclass(frozen=True)
class MessageFeatures:
    """Tokens of one message: ``words`` (counted) and ``traits`` (present or not)."""

    words: tuple[str, ...]
    traits: tuple[str, ...]


def bucket(value: float, edges: Sequence[float]) -> int:
    """The index of the first edge ``value`` does not exceed (``len(edges)`` when above all)."""
    for i, edge in enumerate(edges):
        if value <= edge:
            return i
    return len(edges)


def _fold(word: str) -> str:
    """Lower-case a word; a year (19xx, 20xx) becomes ``#year``, which carries across decades."""
    if len(word) == 4 and word.isdigit() and word[:2] in ("19", "20"):
        return "#year"
    return word.lower()


def decode_header_text(value: str) -> str:
    """Decode RFC 2047 encoded words; bogus charsets and broken encodings never raise."""
    if "=?" not in value:
        return value
    try:
        chunks = email.header.decode_header(value)
    except Exception:
        return value
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii", "replace"))
        except (LookupError, ValueError, TypeError):
            out.append(chunk.decode("latin-1"))
    return "".join(out)


def registered_domain(host: str) -> str:
    """A cheap approximation of the registrable domain (last two labels, three under co.uk-style)."""
    labels = [label for label in host.strip(".").lower().split(".") if label]
    if len(labels) <= 2:
        return ".".join(labels)
    if labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _url_host(url: str) -> tuple[str, bool, bool]:
    """(host, has_userinfo, has_port) of an http(s) or www. URL."""
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    userinfo = "@" in authority
    authority = authority.rsplit("@", 1)[-1]
    port = ":" in authority
    host = authority.split(":", 1)[0].strip(".").lower()
    return host, userinfo, port


def _url_traits(urls: list[str], traits: list[str]) -> None:
    traits.append(f"@urls:{bucket(len(urls), (0, 1, 3, 8, 20))}")
    domains: set[str] = set()
    for url in urls[:40]:
        host, userinfo, port = _url_host(url)
        if not host:
            continue
        if _IPV4.match(host):
            traits.append("@url_ip")
        else:
            domain = registered_domain(host)
            domains.add(domain)
            traits.append("@url_domain:" + domain)
            traits.append("@url_tld:" + host.rsplit(".", 1)[-1])
            if host.count(".") >= 3:
                traits.append("@url_deep_host")
            if re.search(r"\d{3,}", host):
                traits.append("@url_host_digits")
        if userinfo:
            traits.append("@url_userinfo")
        if port:
            traits.append("@url_port")
        if "%" in url.split("?", 1)[0]:
            traits.append("@url_escaped_path")
        if len(url) > 120:
            traits.append("@url_long")
        if url.lower().startswith("https"):
            traits.append("@url_https")
    traits.append(f"@url_domains:{bucket(len(domains), (0, 1, 2, 4))}")


def _html_traits(html: str, traits: list[str], urls: list[str]) -> str:
    """Add traits of one HTML part, collect its links, and return its visible text."""
    html = html[:MAX_HTML_CHARS]
    for tag in {t.lower() for t in _TAG.findall(html)} & _HTML_TAGS_OF_INTEREST:
        traits.append("@html_tag:" + tag)
    if _HIDDEN.search(html):
        traits.append("@html_hidden_text")
    if _COMMENT_IN_WORD.search(html):
        traits.append("@html_comment_in_word")
    for link in itertools.islice(_HREF.finditer(html), 100):
        href, anchor = link.group(1), link.group(2)
        if href.lower().startswith(("http", "www.")):
            urls.append(href)
            anchor_urls = _URL.findall(anchor)
            if anchor_urls and _url_host(anchor_urls[0])[0] != _url_host(href)[0]:
                traits.append("@url_anchor_mismatch")
        elif href.lower().startswith("mailto:"):
            traits.append("@mailto")
    try:
        tree = LexborHTMLParser(html)
        tree.strip_tags(["script", "style", "head"])
        text = tree.text(separator=" ") or ""
    except Exception:
        text = re.sub(r"<[^>]*>", " ", html)
    ratio = len(text.strip()) / max(len(html), 1)
    traits.append(f"@html_text_ratio:{bucket(ratio, (0.02, 0.1, 0.25, 0.5))}")
    traits.append(f"@html_imgs:{bucket(html.lower().count('<img'), (0, 1, 3))}")
    return text


def _address_traits(prefix: str, value: str, traits: list[str]) -> str:
    """Traits of an address header; returns the address's domain."""
    name, addr = email.utils.parseaddr(value)
    if not addr or "@" not in addr:
        traits.append(f"@{prefix}_no_address")
        return ""
    local, _, domain = addr.rpartition("@")
    domain = domain.lower().strip(".>")
    traits.append(f"@{prefix}_domain:" + registered_domain(domain))
    traits.append(f"@{prefix}_tld:" + domain.rsplit(".", 1)[-1])
    if re.search(r"\d{3,}", local):
        traits.append(f"@{prefix}_local_digits")
    if name:
        name = decode_header_text(name)
        if "@" in name:
            traits.append(f"@{prefix}_name_has_address")
        if name.isupper() and len(name) > 3:
            traits.append(f"@{prefix}_name_caps")
    else:
        traits.append(f"@{prefix}_no_name")
    return domain


def _header_traits(mail: ParsedMail, traits: list[str]) -> str:
    """Traits of the header fields this module reads; returns the decoded subject."""
    present = {name for name, _ in mail.headers}
    for name in _EXPECTED_HEADERS:
        if name not in present:
            traits.append("@missing:" + name)
    from_domain = _address_traits("from", mail.header("from"), traits)
    if "reply-to" in present:
        reply_domain = _address_traits("replyto", mail.header("reply-to"), traits)
        if reply_domain and from_domain and registered_domain(reply_domain) != registered_domain(from_domain):
            traits.append("@replyto_other_domain")
    to = mail.header("to")
    recipients = email.utils.getaddresses([to, mail.header("cc")]) if to or mail.header("cc") else []
    traits.append(f"@recipients:{bucket(len(recipients), (0, 1, 3, 10))}")
    if "undisclosed" in to.lower() or (to and not any("@" in a for _, a in recipients)):
        traits.append("@to_undisclosed")
    msgid = mail.header("message-id")
    if msgid:
        mid_domain = msgid.rpartition("@")[2].strip("> ").lower()
        if not mid_domain or "." not in mid_domain:
            traits.append("@msgid_no_domain")
        elif from_domain and registered_domain(mid_domain) != registered_domain(from_domain):
            traits.append("@msgid_other_domain")
    date = mail.header("date")
    if date:
        try:
            parsed = email.utils.parsedate_tz(date)
        except Exception:
            parsed = None
        if parsed is None:
            traits.append("@date_unparseable")
        elif parsed[9] is None or parsed[9] % 900:
            traits.append("@date_odd_zone")
    mailer = (mail.header("x-mailer") or mail.header("user-agent")).lower()
    words = _MAILER_WORD.findall(mailer)
    traits.append("@mailer:" + (words[0] if words else "none"))
    raw_subject = mail.header("subject")
    subject = decode_header_text(raw_subject)
    if raw_subject != subject:
        traits.append("@subject_encoded")
    if any(ord(c) > 127 for c in raw_subject):
        traits.append("@subject_raw_8bit")
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 6:
        caps = sum(c.isupper() for c in letters) / len(letters)
        traits.append(f"@subject_caps:{bucket(caps, (0.3, 0.7))}")
    if "!" in subject:
        traits.append("@subject_bang")
    if "$" in subject or "%" in subject:
        traits.append("@subject_money")
    if re.match(r"(?i)\s*(re|fwd?|aw)\s*:", subject):
        traits.append("@subject_reply")
    if _TRAILING_ID.search(subject):
        traits.append("@subject_trailing_id")
    return subject


def _text_traits(text: str, traits: list[str]) -> None:
    length = len(text.strip())
    traits.append(f"@text_len:{bucket(length, (0, 200, 1000, 4000, 15000))}")
    if not length:
        return
    # per-character counts in C (map over str methods, encode), not in Python generators:
    # the same counts, a sixth less time in extract_features on the corpus
    letters = sum(map(str.isalpha, text))
    upper = sum(map(str.isupper, text))
    traits.append(f"@caps:{bucket(upper / max(letters, 1), (0.05, 0.15, 0.3))}")
    nonascii = 0 if text.isascii() else len(text) - len(text.encode("ascii", "ignore"))
    traits.append(f"@nonascii:{bucket(nonascii / length, (0, 0.02, 0.2))}")
    traits.append(f"@bangs:{bucket(text.count('!'), (0, 2, 8))}")
    if _OBFUSCATED.search(text):
        traits.append("@obfuscated_word")
    if _SPACED_WORD.search(text):
        traits.append("@spaced_word")


def extract_features(mail: ParsedMail) -> MessageFeatures:
    """Words and traits of a parsed message. Never raises on content."""
    traits: list[str] = []
    subject = _header_traits(mail, traits)
    kinds = [p.content_type for p in mail.parts]
    traits.append("@structure:" + ">".join(dict.fromkeys(mail.structure[:6])))
    if mail.attachments:
        for ctype in sorted(set(mail.attachments)):
            traits.append("@attachment:" + ctype)
    if "text/html" in kinds and "text/plain" not in kinds:
        traits.append("@html_only")
    if mail.truncated:
        traits.append("@huge")
    if mail.defects:
        traits.append("@mime_defects")
    urls: list[str] = []
    texts: list[str] = []
    used = 0
    for part in mail.parts:
        traits.append("@charset:" + (part.charset or "none"))
        if part.charset_unknown:
            traits.append("@charset_unknown")
        if part.transfer_encoding:
            traits.append(f"@cte:{part.content_type}:{part.transfer_encoding}")
        if used >= MAX_TEXT_CHARS:
            continue
        text = part.text
        if part.content_type == "text/html" or (
            part.content_type == "text/plain" and text.lstrip()[:6].lower() in ("<html>", "<!doct")
        ):
            text = _html_traits(text, traits, urls)
        texts.append(text[: MAX_TEXT_CHARS - used])
        used += len(texts[-1])
    body = " ".join(texts)
    urls.extend(_URL.findall(body))
    _url_traits(urls, traits)
    _text_traits(body, traits)
    body_words = [_fold(w) for w in _WORD.findall(body)]
    words = ["s:" + _fold(w) for w in _WORD.findall(subject)] + body_words
    return MessageFeatures(words=tuple(words), traits=tuple(traits))
