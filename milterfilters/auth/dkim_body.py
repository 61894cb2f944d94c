"""DKIM and ARC body hashes (RFC 6376 §3.4.3 to §3.4.5, §3.7), each canonicalization computed once.

dkimpy canonicalizes and hashes the whole body again for every signature, with regular
expressions that take quadratic time on a long run of spaces (a 40 KB line of blanks costs
1.5 s); ten signatures on a 10 MB body cost seconds of CPU and hundreds of MB. Here a message's
body is read once per canonicalization (simple, relaxed), in chunks cut after a line end, with
linear-time transformations; one SHA-256 stream per canonicalization gives every ``l=``
prefix (a copy of the hash state is taken as the stream passes each length asked for). The
bytes hashed per message are capped, and the call's deadline is checked between chunks.

The canonical body is exactly dkimpy's (its ``rfc822_parse`` turns bare LF into CRLF, then
``canonicalize_body``); ``tests/auth/test_security_dkim_amplification.py`` checks that on
hostile bodies with hypothesis.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from milterfilters.core.deadline import NO_DEADLINE, Deadline

#: body bytes per step between deadline checks (relaxed canonicalization of one step holds
#: the GIL for about 0.5 ms, so other connections' threads wait little; hashing releases it)
CHUNK_BYTES = 16 * 1024

_TAB_TO_SPACE = bytes.maketrans(b"\t", b" ")
_SPACES = re.compile(rb"  +")
_CRLF_PAIRS_REVERSED = re.compile(rb"(?:\n\r)*")


class BodyHashLimit(Exception):
    """The body hash was not computed: the message's hashing budget is spent.

    Not a dkimpy exception on purpose: nothing in dkimpy turns it into a verdict.
    """


def _normalized(chunk: bytes) -> bytes:
    """Line ends as dkimpy reads them: every LF (with or without CR before it) becomes CRLF."""
    return chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _relaxed_lines(chunk: bytes) -> bytes:
    """Relaxed body canonicalization of whole lines (§3.4.4 a, b), in linear time:
    runs of WSP become one SP, then the SP left before each CRLF goes."""
    return _SPACES.sub(b" ", chunk.translate(_TAB_TO_SPACE)).replace(b" \r\n", b"\r\n")


def _raw_chunks(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` in pieces of about ``size`` bytes, each cut after an LF (or at the end)."""
    view = memoryview(body)
    start, end = 0, len(view)
    while start < end:
        stop = min(start + size, end)
        if stop < end:
            cut = body.rfind(b"\n", start, stop)
            if cut < start:  # one very long line: cut at its end, linear work all the same
                cut = body.find(b"\n", stop)
            stop = end if cut < 0 else cut + 1
        yield bytes(view[start:stop])
        start = stop


def _trailing_crlfs(piece: bytes) -> int:
    """How many CRLF pairs end ``piece``."""
    tail = piece[len(piece.rstrip(b"\r\n")) :]
    return _CRLF_PAIRS_REVERSED.match(tail[::-1]).end() // 2  # type: ignore[union-attr]


def canonical_pieces(body: bytes, algorithm: str, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The canonical body (``simple`` or ``relaxed``) as consecutive pieces.

    Trailing empty lines are held back until content follows them (§3.4.3, §3.4.4 c); the
    body ends with one CRLF, and an empty body is CRLF (simple) or nothing (relaxed).
    """
    if algorithm not in ("simple", "relaxed"):
        raise ValueError(f"unknown body canonicalization {algorithm!r}")
    held = 0  # CRLFs seen at the end of the output so far, not yet emitted
    content = False
    for raw in _raw_chunks(body, size):
        piece = _normalized(raw)
        if algorithm == "relaxed":
            piece = _relaxed_lines(piece)
        trailing = _trailing_crlfs(piece)
        if trailing * 2 == len(piece):
            held += trailing
            continue
        yield b"\r\n" * held + piece[: len(piece) - 2 * trailing]
        held, content = trailing, True
    if content:
        yield b"\r\n"
    elif algorithm == "simple":
        yield b"\r\n"


@dataclass
class _Stream:
    """One canonicalization's SHA-256 stream, with the hash states taken at ``l=`` lengths."""

    pieces: Iterator[bytes]
    hasher: Any = field(default_factory=hashlib.sha256)
    length: int = 0
    complete: bool = False
    over_budget: bool = False
    at_length: dict[int, bytes] = field(default_factory=dict)


class BodyHashes:
    """SHA-256 body hashes of one message for any (canonicalization, ``l=``), each
    canonicalization streamed once, at most ``max_bytes`` canonical bytes in all.

    Register every (canonicalization, limit) a message's signatures use with :meth:`want`
    before the first :meth:`digest`; one asked for later costs a second pass (still within
    ``max_bytes``). :meth:`digest` raises :class:`BodyHashLimit` when the budget ran out
    before the length needed, and ``DeadlineExceeded`` when ``deadline`` passes.
    """

    def __init__(self, body: bytes, *, max_bytes: int, deadline: Deadline = NO_DEADLINE) -> None:
        self.body = body
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.hashed = 0  # canonical bytes hashed so far, all canonicalizations together
        self._wanted: dict[str, set[int]] = {}
        self._streams: dict[str, _Stream] = {}

    def want(self, requests: Iterable[tuple[str, int | None]]) -> None:
        """Register (canonicalization, limit) pairs; ``None`` is the whole body."""
        for algorithm, limit in requests:
            if limit is not None:
                self._wanted.setdefault(algorithm, set()).add(limit)
            else:
                self._wanted.setdefault(algorithm, set())

    def digest(self, algorithm: str, limit: int | None = None) -> bytes:
        """The SHA-256 of the first ``limit`` bytes (all for None) of the canonical body.

        For a limit beyond the body, the hash of the whole body (check :meth:`length`).
        """
        stream = self._stream(algorithm, limit)
        if limit is not None and limit in stream.at_length:
            return stream.at_length[limit]
        if limit is not None and limit < stream.length:
            del self._streams[algorithm]  # that limit was passed unrecorded: stream again
            return self.digest(algorithm, limit)
        self._run(algorithm, stream, limit)
        if limit is not None and limit in stream.at_length:
            return stream.at_length[limit]
        return stream.hasher.digest()  # type: ignore[no-any-return]

    def length(self, algorithm: str) -> int | None:
        """The canonical body's length, or None when the budget ran out before its end."""
        stream = self._stream(algorithm, None)
        try:
            self._run(algorithm, stream, None)
        except BodyHashLimit:
            return None
        return stream.length

    def hashed_at_least(self, algorithm: str) -> int:
        """Canonical bytes of ``algorithm`` read so far (a lower bound of its length)."""
        stream = self._streams.get(algorithm)
        return stream.length if stream else 0

    def _stream(self, algorithm: str, limit: int | None) -> _Stream:
        stream = self._streams.get(algorithm)
        if stream is None:
            self.want([(algorithm, limit)])
            stream = _Stream(canonical_pieces(self.body, algorithm))
            self._streams[algorithm] = stream
        return stream

    def _run(self, algorithm: str, stream: _Stream, limit: int | None) -> None:
        """Hash on until ``limit`` (None: the end) is reached."""
        marks = sorted(m for m in self._wanted.get(algorithm, ()) if m >= stream.length)
        while not stream.complete and (limit is None or stream.length < limit):
            if stream.over_budget:
                raise BodyHashLimit(
                    f"body hash not computed: over the limit of {self.max_bytes} bytes hashed per message"
                )
            self.deadline.check("DKIM body hashing")
            piece = next(stream.pieces, None)
            if piece is None:
                stream.complete = True
                break
            room = self.max_bytes - self.hashed
            if len(piece) > room:  # hash what the budget allows: l= prefixes within it verify
                piece, stream.over_budget = piece[:room], True
            self.hashed += len(piece)
            marks = self._feed(stream, piece, marks)
            time.sleep(0)  # let other connections' threads have the GIL between chunks

    @staticmethod
    def _feed(stream: _Stream, piece: bytes, marks: list[int]) -> list[int]:
        """Hash ``piece``, copying the state at each mark it reaches; the marks left."""
        offset = 0
        while marks and marks[0] <= stream.length + len(piece):
            cut = marks.pop(0) - stream.length
            stream.hasher.update(piece[offset:cut])
            stream.at_length[stream.length + cut] = stream.hasher.copy().digest()
            offset = cut
        stream.hasher.update(piece[offset:])
        stream.length += len(piece)
        return marks
