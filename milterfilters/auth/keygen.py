"""The ``milterfilters dkim-keygen`` command: write a DKIM key pair and print the DNS record."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from milterfilters.auth.dkim_keys import KeyType, generate_key, zone_line


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write DIR/DOMAIN.SELECTOR.TYPE.key (mode 0600) and .txt; print the record to publish."""
    key_type: KeyType = args.algorithm
    try:
        pem, key = generate_key(key_type, args.bits)
    except ValueError as e:
        return _fail(str(e))
    out = Path(args.out)
    base = f"{args.domain}.{args.selector}.{key_type}"
    key_path, txt_path = out / f"{base}.key", out / f"{base}.txt"
    line = zone_line(args.domain, args.selector, key.public_record)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        txt_path.write_text(line + "\n")
    except FileExistsError:
        return _fail(f"{key_path} exists; not overwriting a key")
    except OSError as e:
        return _fail(f"cannot write key files in {out}: {e.strerror}")
    algorithm = "rsa-sha256" if key_type == "rsa" else "ed25519-sha256"
    print(f"# private key: {key_path} (mode 0600)")
    print(f"# key table entry: {{ domain = {args.domain!r}, selector = {args.selector!r}, ", end="")
    print(f"key_file = {str(key_path)!r}, algorithm = {algorithm!r} }}")
    print("# publish this DNS record:")
    print(line)
    return 0


def _fail(message: str) -> int:
    print(f"milterfilters: {message}", file=sys.stderr)
    return 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``dkim-keygen`` to the command line."""
    p = subparsers.add_parser(
        "dkim-keygen", help="write a DKIM key pair and print the DNS TXT record to publish"
    )
    p.add_argument("domain", metavar="DOMAIN", help="signing domain (d=)")
    p.add_argument("selector", metavar="SELECTOR", help="selector (s=)")
    p.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa", help="key type (default rsa)")
    p.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    p.add_argument("--out", metavar="DIR", default=".", help="directory for the key files (default .)")
    p.set_defaults(func=cmd_keygen)
