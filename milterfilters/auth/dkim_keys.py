"""DKIM private keys: generate a pair, load and check a key file, and the DNS record to publish.

Key files are PEM (RSA in PKCS#1 or PKCS#8, Ed25519 in PKCS#8 as ``openssl genpkey`` writes
it), or dkimpy's own Ed25519 format (the base64 32-byte seed ``dknewkey`` writes). The
``milterfilters dkim-keygen`` command is in :mod:`milterfilters.auth.keygen`.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

KeyType = Literal["rsa", "ed25519"]

#: DKIM signing algorithm → the key type it needs
ALGORITHMS: dict[str, KeyType] = {"rsa-sha256": "rsa", "ed25519-sha256": "ed25519"}
MIN_RSA_BITS = 1024


class KeyFileError(Exception):
    """A key file that cannot be used for signing, with the reason."""


@dataclass(frozen=True)
class PrivateKey:
    """A private key in the form dkimpy signs with, and its public DNS record."""

    key_type: KeyType
    bits: int
    dkimpy_key: bytes  # PKCS#1 PEM for RSA, base64 seed for Ed25519
    public_record: str  # the TXT record value, e.g. "v=DKIM1; k=ed25519; p=..."


def _from_rsa(key: rsa.RSAPrivateKey) -> PrivateKey:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"
    return PrivateKey("rsa", key.key_size, pem, record)


def _from_ed25519(key: ed25519.Ed25519PrivateKey) -> PrivateKey:
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    record = f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    return PrivateKey("ed25519", 256, base64.b64encode(seed), record)


def parse_private_key(data: bytes) -> PrivateKey:
    """Read a private key from file contents; raises :class:`KeyFileError`."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except TypeError:
            raise KeyFileError(
                "the key is encrypted; DKIM keys must be stored without a passphrase"
            ) from None
        except ValueError as e:
            raise KeyFileError(f"not a readable PEM private key ({e})") from None
        if isinstance(key, rsa.RSAPrivateKey):
            return _from_rsa(key)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return _from_ed25519(key)
        raise KeyFileError(f"unsupported key type {type(key).__name__}; DKIM uses RSA or Ed25519")
    try:
        seed = base64.b64decode(text, validate=True)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise KeyFileError("neither a PEM private key nor a base64 Ed25519 seed")
    return _from_ed25519(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def load_signing_key(path: str | os.PathLike[str], algorithm: str) -> PrivateKey:
    """Load the key file at ``path`` for ``algorithm``, checking what start-up must check.

    The file must be readable, not readable by everyone, hold a key of the algorithm's
    type, and an RSA key must have at least 1024 bits (RFC 8301).
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {p}: {e.strerror}") from None
    if mode & stat.S_IROTH:
        raise KeyFileError(
            f"key file {p} is readable by everyone (mode {stat.S_IMODE(mode):04o}); chmod 600 or 640 it"
        )
    try:
        key = parse_private_key(data)
    except KeyFileError as e:
        raise KeyFileError(f"key file {p}: {e}") from None
    expected = ALGORITHMS.get(algorithm)
    if expected is None:
        raise KeyFileError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    if key.key_type != expected:
        raise KeyFileError(f"key file {p} holds an {key.key_type} key, but the algorithm is {algorithm}")
    if key.key_type == "rsa" and key.bits < MIN_RSA_BITS:
        raise KeyFileError(f"key file {p} holds a {key.bits}-bit RSA key; at least {MIN_RSA_BITS} bits")
    return key


def generate_key(key_type: KeyType, bits: int = 2048) -> tuple[bytes, PrivateKey]:
    """A new key: its PEM (PKCS#8 for Ed25519, PKCS#1 for RSA) and the parsed key."""
    if key_type == "rsa":
        if bits < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return pem, _from_rsa(rsa_key)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    pem = ed_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, _from_ed25519(ed_key)


def zone_line(domain: str, selector: str, record: str) -> str:
    """The record as a zone-file line, split into strings of at most 255 characters."""
    chunks = [record[i : i + 255] for i in range(0, len(record), 255)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain.rstrip('.')}. IN TXT ( {quoted} )"
