"""An authenticated sender cannot stall outbound signing with a long run of blanks.

dkimpy's relaxed body canonicalization takes quadratic time on runs of spaces (40 KB cost
1.5 s); the signer hands it a body already canonicalized in linear time, which relaxed
canonicalization leaves as it is, so the signature is the same and verifies on the message
as sent.
"""

from __future__ import annotations

import time

from tests.auth.test_dkim_sign import MESSAGE, delivered, keys, sign, verify  # noqa: F401
from tests.support.dnsserver import DnsTestServer

BLANKS = MESSAGE.replace(b"The report.\r\n", b"The report." + b" \t" * 250_000 + b"x\r\n  \r\n\r\n")


def test_long_run_of_blanks_from_an_authenticated_sender_signs_fast_and_verifies(
    dns_server: DnsTestServer,
    keys,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    start = time.process_time()
    signatures = sign(dns_server, keys, BLANKS, auth_user="alice")
    spent = time.process_time() - start
    assert len(signatures) == 2
    # dkimpy alone needs minutes for this body; the linear path well under the filter timeout
    assert spent < 5.0, f"signing took {spent:.1f} s of CPU"
    assert sorted(f.split()[0] for f in verify(dns_server, delivered(signatures, BLANKS))) == [
        "DKIM_PASS",
        "DKIM_PASS",
    ]


def test_signature_of_a_plain_message_is_unchanged_by_the_linear_canonicalization(
    dns_server: DnsTestServer,
    keys,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    signatures = sign(dns_server, keys, auth_user="alice")
    assert all(s.startswith("DKIM_PASS") for s in verify(dns_server, delivered(signatures)))
