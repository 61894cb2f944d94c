"""The ``check`` command as a user runs it: a subprocess, JSON out, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def check(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "check", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def test_check_json_for_gtube() -> None:
    msg = f"From: a@example.org\nSubject: test\n\n{GTUBE}\n".encode()
    r = check(
        "--json",
        "--client-ip",
        "203.0.113.5",
        "--rcpt",
        "User@Example.NET",
        "--rcpt",
        "b@example.net",
        "-",
        stdin=msg,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["action"] == "reject"
    assert out["reply"] == {"code": 554, "enhanced": "5.7.1", "text": "Message rejected as spam"}
    assert out["score"] >= 1000
    # the default chain also asks SPF, DKIM and DMARC (a dead loopback resolver here: temperrors)
    names = [s["name"] for s in out["symbols"]]
    assert "GTUBE" in names and "SPF_TEMPERROR" in names
    assert [r["address"] for r in out["recipients"]] == ["User@Example.NET", "b@example.net"]
    assert all(r["action"] == "accept" and r["reply"] is None for r in out["recipients"])
    assert isinstance(out["add_headers"], list)


@pytest.mark.parametrize("null", ["", "<>"])
def test_null_sender_spellings(null: str, tmp_path: Path) -> None:
    p = tmp_path / "m.eml"
    p.write_bytes(b"From: a@example.org\nSubject: hi\n\nhello\n")
    r = check("--json", "--mail-from", null, "--rcpt", "x@example.net", str(p))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["action"] == "accept"


def test_check_text_output_and_errors(tmp_path: Path) -> None:
    r = check("-", stdin=b"Subject: hi\n\nhello\n")
    assert r.returncode == 0 and b"action: accept" in r.stdout
    missing = check(str(tmp_path / "nope.eml"))
    assert missing.returncode == 2
    assert missing.stderr.decode().count("\n") == 1 and b"cannot read message" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[milter]\nsocket = 3\n")
    r = check("--config", str(bad), "-", stdin=b"")
    assert r.returncode == 2 and b"milter.socket" in r.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "check", "--bogus"], capture_output=True
    )
    assert usage.returncode == 2
