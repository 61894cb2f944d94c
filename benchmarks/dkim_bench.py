"""Per-message cost of DKIM verification, DKIM+ARC+DMARC, and signing, through the chain.

Keys are served by the loopback test DNS server; the resolver caches, as in production,
so the figures are the CPU cost per message once keys are cached (first lookups aside).
Run from the project root:  .venv/bin/python benchmarks/dkim_bench.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import dkim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import generate_key
from tests.support.dnsserver import DnsTestServer, Zone
from tests.support.mailauth import auth_chain

BODY = b"".join(
    b"Line %d of a typical message body, about seventy characters long...\r\n" % i for i in range(60)
)
MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@test.example\r\nSubject: report\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b@example.com>\r\n\r\n" + BODY
)


def per_message(label: str, n: int, run) -> None:  # type: ignore[no-untyped-def]
    run()  # warm the DNS cache
    start = time.perf_counter()
    for _ in range(n):
        run()
    ms = (time.perf_counter() - start) * 1000 / n
    print(f"{label:<52} {ms:7.2f} ms/msg")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rsa_pem, rsa = generate_key("rsa", 2048)
    ed_pem, ed = generate_key("ed25519")
    zone = Zone(
        {
            "rsa._domainkey.example.com": [("TXT", rsa.public_record)],
            "ed._domainkey.example.com": [("TXT", ed.public_record)],
            "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")],
            "example.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
        }
    )
    rsa_signed = dkim.sign(MESSAGE, b"rsa", b"example.com", rsa.dkimpy_key) + MESSAGE
    ed_signed = (
        dkim.sign(MESSAGE, b"ed", b"example.com", ed.dkimpy_key, signature_algorithm=b"ed25519-sha256")
        + MESSAGE
    )
    both = (
        dkim.sign(rsa_signed, b"ed", b"example.com", ed.dkimpy_key, signature_algorithm=b"ed25519-sha256")
        + rsa_signed
    )
    print(f"{n} messages of {len(MESSAGE)} bytes, serial, one core")
    with DnsTestServer(zone) as dns, tempfile.TemporaryDirectory() as tmp:
        verify = auth_chain(dns, {"dkim": {"arc": False}})
        full = auth_chain(dns, {"spf": {}, "dkim": {}, "dmarc": {}})
        for label, chain, message in (
            ("baseline: default chain, unsigned", auth_chain(dns, {}), MESSAGE),
            ("dkim verify, unsigned (no DNS)", verify, MESSAGE),
            ("dkim verify, rsa-sha256 2048", verify, rsa_signed),
            ("dkim verify, ed25519-sha256", verify, ed_signed),
            ("dkim verify, dual signed", verify, both),
            ("spf + dkim + arc + dmarc, dual signed", full, both),
        ):
            per_message(label, n, lambda c=chain, m=message: evaluate(c, m, client_ip="192.0.2.1",
                        mail_from="alice@example.com", recipients=["bob@test.example"]))  # fmt: skip
        keys = []
        for name, pem, algorithm in (("rsa", rsa_pem, "rsa-sha256"), ("ed", ed_pem, "ed25519-sha256")):
            path = Path(tmp) / f"{name}.key"
            path.write_bytes(pem)
            path.chmod(0o600)
            keys.append(
                {"domain": "example.com", "selector": name, "key_file": str(path), "algorithm": algorithm}
            )
        for label, table in (
            ("sign rsa-sha256 2048", keys[:1]),
            ("sign ed25519", keys[1:]),
            ("sign dual", keys),
        ):
            chain = auth_chain(dns, {"dkim_sign": {"keys": table}})
            per_message(
                label, n, lambda c=chain: evaluate(c, MESSAGE, auth_user="alice", recipients=["b@x.example"])
            )


if __name__ == "__main__":
    main()
