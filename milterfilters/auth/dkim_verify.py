"""DKIM signature verification (RFC 6376, RFC 8463 Ed25519, RFC 8301 algorithms and key sizes).

dkimpy does the header and signature cryptography; this module decides what each
signature's outcome *means*: ``pass``, ``fail`` (the signature does not match the message),
``temperror`` (DNS could not answer now), ``permerror`` (the signature or its key can never
verify: malformed, expired, no key, key too small, rsa-sha1, From not signed, ...) or
``neutral`` (not checked: over ``max_signatures``, or the body hash budget is spent). dkimpy
folds most of these into a bare ``False``, so the key lookup goes through a recorder that
remembers what DNS answered.

The body hash (``bh=``) is not left to dkimpy, which canonicalizes the whole body again per
signature: :mod:`milterfilters.auth.dkim_body` streams each canonicalization once, under a
byte budget and the filter call's deadline, and dkimpy is handed only the header.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, replace

import dkim
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError
from dkim.crypto import parse_public_key
from dkim.util import InvalidTagValueList, parse_tag_value

from milterfilters.auth.dkim_body import BodyHashes, BodyHashLimit
from milterfilters.core.deadline import NO_DEADLINE, Deadline
from milterfilters.dns import DnsTemporaryError, TxtLookup

ACCEPTED_ALGORITHMS = frozenset({"rsa-sha256", "ed25519-sha256"})

#: dkimpy logs every failed signature at error level; its messages end up in our results instead
DKIMPY_LOG = logging.getLogger("milterfilters.dkim.dkimpy")

#: a line that may start a DKIM-Signature field (also matches in a body: only a pre-check)
_SIGNATURE_LINE = re.compile(rb"(?im)^dkim-signature:")
#: where the header ends as dkimpy's ``rfc822_parse`` sees it: the first empty line
_HEADER_END = re.compile(rb"(?:\A|\n)\r?\n")
#: default for the canonical body bytes hashed per message, all signatures and ARC together:
#: both canonicalizations of a body at the milter's default ``max_body_bytes`` (10 MiB)
DEFAULT_MAX_HASHED_BYTES = 20 * 1024 * 1024
DKIMPY_LOG.addHandler(logging.NullHandler())
DKIMPY_LOG.propagate = False


@dataclass(frozen=True)
class SignatureResult:
    """The outcome of one DKIM-Signature field."""

    result: str  # pass, fail, temperror, permerror, neutral
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    signature_prefix: str = ""  # the first characters of b=, for header.b (RFC 6008)
    reason: str = ""
    key_bits: int | None = None
    unsigned_body_bytes: int = 0  # canonical body bytes after the l= limit

    @property
    def label(self) -> str:
        """``d=example.com s=sel a=rsa-sha256`` for details and logs."""
        return f"d={self.domain or '?'} s={self.selector or '?'} a={self.algorithm or '?'}"


#: OpenSSL's limits for RSA public-key operations. dkimpy's RSA is pure Python and holds the
#: GIL: a sender's key with a 16384-bit exponent would stop every milter thread for seconds.
MAX_RSA_EXPONENT_BITS = 64
MAX_RSA_MODULUS_BITS = 16384


def costly_key_problem(record: bytes) -> str:
    """Why verifying with the RSA key in ``record`` would cost unbounded time, or ""."""
    try:
        tags = parse_tag_value(record)
        if _text(tags.get(b"k", b"rsa")).strip().lower() != "rsa":
            return ""
        key = parse_public_key(base64.b64decode(tags.get(b"p", b"")))
        exponent_bits = int(key["publicExponent"]).bit_length()
        modulus_bits = int(key["modulus"]).bit_length()
    except Exception:  # not a key dkimpy can use either: it reports why
        return ""
    if exponent_bits > MAX_RSA_EXPONENT_BITS:
        return f"RSA key exponent of {exponent_bits} bits is too large"
    if modulus_bits > MAX_RSA_MODULUS_BITS:
        return f"RSA key of {modulus_bits} bits is too large"
    return ""


class KeyRecorder:
    """dkimpy's ``dnsfunc`` on top of a :data:`TxtLookup`, remembering each answer.

    Only the first TXT record of a name is used (RFC 6376 3.6.2.2 leaves several undefined).
    A key too costly to verify with is not handed to dkimpy; :attr:`refused` says why.
    """

    def __init__(self, lookup_txt: TxtLookup) -> None:
        self._lookup_txt = lookup_txt
        self.answers: dict[str, bytes | None] = {}
        self.refused: dict[str, str] = {}

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode("ascii") if isinstance(name, bytes) else name
        qname = qname.rstrip(".").lower()
        records = self._lookup_txt(qname)
        answer = records[0] if records else None
        self.answers[qname] = answer
        problem = costly_key_problem(answer) if answer is not None else ""
        if problem:
            self.refused[qname] = problem
            return None
        return answer

    def key_record(self, selector: str, domain: str) -> tuple[bool, bytes | None]:
        """Whether the key of ``selector``/``domain`` was asked for, and what came back."""
        qname = f"{selector}._domainkey.{domain}".lower()
        return qname in self.answers, self.answers.get(qname)


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")


def _key_type(record: bytes) -> str:
    try:
        tags = parse_tag_value(record)
    except InvalidTagValueList:
        return ""
    return _text(tags.get(b"k", b"rsa")).strip().lower()


def _permanent_key_problem(record: bytes | None) -> str:
    """Why a key record cannot be used, or "" if it looks usable."""
    if record is None:
        return "no key for signature"
    try:
        dkim.evaluate_pk("key", record)
    except dkim.DKIMException as e:
        return f"unusable key record: {e}"
    except Exception as e:  # base64 and ASN.1 errors surface as assorted types
        return f"unusable key record: {type(e).__name__}"
    return ""


def _check_tags(tags: dict[bytes, bytes], now: float, clock_skew: float) -> str:
    """RFC checks dkimpy does not make (or makes against its own clock); "" if fine."""
    algorithm = _text(tags.get(b"a", b"")).lower()
    if algorithm == "rsa-sha1":
        return "rsa-sha1 is not acceptable (RFC 8301)"
    if algorithm not in ACCEPTED_ALGORITHMS:
        return f"unknown algorithm {algorithm!r}"
    signed = [h.strip().lower() for h in _text(tags.get(b"h", b"")).split(":")]
    if "from" not in signed:
        return "From header field not signed"
    try:
        t = int(tags[b"t"]) if b"t" in tags else None
        x = int(tags[b"x"]) if b"x" in tags else None
    except ValueError:
        return "t= or x= is not a number"
    if t is not None and t > now + clock_skew:
        return f"signature timestamp t={t} is in the future"
    if x is not None and x + clock_skew < now:
        return f"signature expired (x={x})"
    if t is not None and x is not None and x < t:
        return "x= is earlier than t="
    return ""


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """``message`` as its header (through the empty line) and its body, as dkimpy splits it."""
    end = _HEADER_END.search(message)
    cut = end.end() if end else len(message)
    return message[:cut], message[cut:]


def body_request(tags: dict[bytes, bytes]) -> tuple[str, int | None]:
    """The body canonicalization and ``l=`` of a signature's tags.

    Raises ``InvalidCanonicalizationPolicyError`` for a bad ``c=`` and ``ValueError`` for an
    ``l=`` that is not 1*76DIGIT (RFC 6376 3.5).
    """
    policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    limit = tags.get(b"l")
    if limit is None:
        return policy.body_algorithm.name.decode(), None
    text = limit.strip()
    if not text.isdigit() or len(text) > 76:
        raise ValueError("l= is not a number")
    return policy.body_algorithm.name.decode(), int(text)


class PrecomputedBodyHash:
    """Mixin for dkimpy's ``DKIM`` and ``ARC``: ``bh=`` is checked against :attr:`body_hashes`
    (computed once per canonicalization and ``l=``), then dkimpy verifies the header
    signature with the body hash taken out of its hands."""

    body_hashes: BodyHashes

    def verify_sig_process(self, sig: dict[bytes, bytes], include_headers: list[bytes],
                           sig_header: tuple[bytes, bytes], dnsfunc: object) -> bool:  # fmt: skip
        self.body_hashes.deadline.check("DKIM signature verification")
        if b"bh" in sig:
            try:
                algorithm, limit = body_request(sig)
            except InvalidCanonicalizationPolicyError as e:
                raise dkim.MessageFormatError(f"invalid c= value: {e}") from e
            except ValueError as e:
                raise dkim.MessageFormatError(str(e)) from e
            if not sig.get(b"a", b"").lower().endswith(b"-sha256"):
                raise dkim.ValidationError("body hash algorithm is not sha256")
            try:
                expected = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]))
            except ValueError as e:
                raise dkim.MessageFormatError(f"bh= is not base64: {e}") from e
            if self.body_hashes.digest(algorithm, limit) != expected:
                raise dkim.ValidationError("body hash mismatch")
            sig = {k: v for k, v in sig.items() if k != b"bh"}
        return super().verify_sig_process(sig, include_headers, sig_header, dnsfunc)  # type: ignore[misc,no-any-return]


class HeaderVerifier(PrecomputedBodyHash, dkim.DKIM):  # type: ignore[misc]
    """dkimpy's DKIM verifier over the header only, body hashes from a :class:`BodyHashes`."""

    def __init__(self, head: bytes, body_hashes: BodyHashes, *, minkey: int) -> None:
        super().__init__(head, logger=DKIMPY_LOG, minkey=minkey)
        self.body_hashes = body_hashes


def _length_problem(body_hashes: BodyHashes, algorithm: str, limit: int) -> tuple[str, int]:
    """For a signature with ``l=limit``: why it fails ("" if not) and the unsigned bytes
    (a lower bound, at least 1, when the budget ran out before the body's end)."""
    length = body_hashes.length(algorithm)
    if length is None:
        seen = body_hashes.hashed_at_least(algorithm)
        return "", max(1, seen - limit)
    if limit > length:
        # the body is shorter than the signer said it signed (RFC 6376 3.5, 6.1.3)
        return f"body shorter than l={limit}", 0
    return "", length - limit


def verify_signature(
    verifier: HeaderVerifier,
    index: int,
    header_value: bytes,
    lookup_txt: TxtLookup,
    *,
    now: float,
    clock_skew: float = 300.0,
) -> SignatureResult:
    """Verify the ``index``-th DKIM-Signature of the message ``verifier`` holds."""
    try:
        tags = parse_tag_value(header_value)
    except InvalidTagValueList as e:
        return SignatureResult("permerror", reason=f"malformed signature: {e}")
    result = SignatureResult(
        "permerror",
        domain=_text(tags.get(b"d", b"")).lower(),
        selector=_text(tags.get(b"s", b"")),
        algorithm=_text(tags.get(b"a", b"")).lower(),
        signature_prefix=re.sub(r"\s+", "", _text(tags.get(b"b", b"")))[:8],
    )

    def outcome(kind: str, reason: str = "", **more: object) -> SignatureResult:
        return replace(result, result=kind, reason=reason, **more)  # type: ignore[arg-type]

    missing = [t for t in (b"v", b"a", b"b", b"bh", b"d", b"h", b"s") if t not in tags]
    if missing:
        return outcome("permerror", f"missing tag {_text(missing[0])}=")
    problem = _check_tags(tags, now, clock_skew)
    if problem:
        return outcome("permerror", problem)
    try:
        algorithm, limit = body_request(tags)
    except ValueError as e:
        return outcome("permerror", str(e))
    except InvalidCanonicalizationPolicyError as e:
        return outcome("permerror", f"invalid c= value: {e}")
    unsigned = 0
    if limit is not None:
        short, unsigned = _length_problem(verifier.body_hashes, algorithm, limit)
        if short:
            return outcome("fail", short)

    recorder = KeyRecorder(lookup_txt)
    valid = False
    error: SignatureResult | None = None
    try:
        valid = verifier.verify(idx=index, dnsfunc=recorder)
    except DnsTemporaryError as e:
        return outcome("temperror", f"key lookup failed: {e}")
    except BodyHashLimit as e:
        return outcome("neutral", str(e))
    except dkim.ValidationError as e:
        body = str(e).startswith("body hash mismatch")
        error = outcome("fail", "body hash did not verify") if body else outcome("permerror", str(e))
    except dkim.DKIMException as e:  # KeyFormatError for a key under minkey, among others
        error = outcome("permerror", str(e))
    except (ValueError, TypeError, IndexError) as e:  # input dkimpy did not anticipate
        error = outcome("permerror", f"malformed signature: {type(e).__name__}")

    asked, record = recorder.key_record(result.selector, result.domain)
    refused = recorder.refused.get(f"{result.selector}._domainkey.{result.domain}".lower())
    if refused:
        return outcome("permerror", f"unusable key record: {refused}")
    if record is not None:
        key_type = _key_type(record)
        if key_type and key_type != result.algorithm.split("-", 1)[0]:
            return outcome("permerror", f"key type {key_type} does not match a={result.algorithm}")
    if error is not None:
        return error
    key_bits = verifier.keysize or None
    if valid:
        return outcome("pass", key_bits=key_bits, unsigned_body_bytes=unsigned)
    problem = _permanent_key_problem(record) if asked else ""
    if problem:
        return outcome("permerror", problem)
    return outcome("fail", "signature did not verify", key_bits=key_bits)


def verify_message(
    message: bytes,
    lookup_txt: TxtLookup,
    *,
    now: float,
    min_rsa_bits: int = 1024,
    clock_skew: float = 300.0,
    max_signatures: int = 10,
    body_hashes: BodyHashes | None = None,
    max_hashed_bytes: int = DEFAULT_MAX_HASHED_BYTES,
    deadline: Deadline = NO_DEADLINE,
) -> list[SignatureResult]:
    """Verify every DKIM-Signature of ``message`` (at most ``max_signatures``), top first.

    Body hashes come from ``body_hashes`` when given (shared with ARC), else from a
    :class:`BodyHashes` over the message's body limited to ``max_hashed_bytes``. A signature
    whose body hash the budget did not reach is ``neutral``, never ``pass``. Raises
    ``DeadlineExceeded`` when ``deadline`` passes.
    """
    if not _SIGNATURE_LINE.search(message):
        return []  # unsigned, the common case: spare dkimpy's parse of the whole message
    head, body = split_message(message)
    if body_hashes is None:
        body_hashes = BodyHashes(body, max_bytes=max_hashed_bytes, deadline=deadline)
    verifier = HeaderVerifier(head, body_hashes, minkey=min_rsa_bits)
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    body_hashes.want(_requests(signatures[:max_signatures]))
    results = []
    for index, value in enumerate(signatures):
        if index >= max_signatures:
            results.append(SignatureResult("neutral", reason=f"more than {max_signatures} signatures"))
            continue
        deadline.check("DKIM verification")
        results.append(verify_signature(verifier, index, value, lookup_txt, now=now, clock_skew=clock_skew))
    return results


def _requests(values: list[bytes]) -> list[tuple[str, int | None]]:
    """The (canonicalization, l=) pairs these DKIM-Signature values ask for (bad ones skipped)."""
    requests = []
    for value in values:
        try:
            requests.append(body_request(parse_tag_value(value)))
        except (InvalidTagValueList, InvalidCanonicalizationPolicyError, ValueError):
            continue
    return requests
