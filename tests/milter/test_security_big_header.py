"""A header field over libmilter's 64 KB packet limit: a real 2023 phishing mail with a 126 KB
``From:`` field made the worker drop the MTA's connection in the middle of the header, with no
log line, so an MTA with ``milter_default_action = tempfail`` deferred it on every retry.

Played against the real worker (libmilter underneath) with a generated field; the MTA side is
miltertest, which sends a header field in one packet as Postfix and Sendmail do.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import Milter
import pytest

from milterfilters.milter.worker import MAX_PACKET_BYTES, raise_packet_limit
from tests.milter.test_adapter import feed, milter_ctx
from tests.support.hostile import BIG_FIELD_BYTES, big_from_value
from tests.support.milterclient import MilterClient, final_action


class Worker:
    """``milterfilters run`` on a unix socket in ``rundir``, its log in a file."""

    def __init__(self, rundir: Path) -> None:
        self.sock = rundir / "milter.sock"
        config = rundir / "milter.toml"
        config.write_text('[milter]\nsocket_mode = "0666"\n')
        self.log = rundir / "milter.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "milterfilters.cli", "run", "--config", str(config)]
                + ["--socket", f"unix:{self.sock}"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_log("listening on", timeout=30)

    def wait_log(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while text not in (log := self.log.read_text()):
            assert self.proc.poll() is None or text in log, log
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{log}"
            time.sleep(0.05)
        return log

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(tmp_path_factory.mktemp("bighdr"))
    yield w
    w.stop()


def _send(worker: Worker, from_value: str) -> str:
    client = MilterClient(str(worker.sock))
    try:
        client.start()
        client.envelope("phish@account-alerts.example", ["user@test.example"])
        replies = client.message([("From", from_value), ("Subject", "Your mailbox is full")], "verify\r\n")
        return final_action(replies)
    finally:
        client.close()


def test_a_126_kb_from_field_gets_a_decision_and_a_log_line(worker: Worker) -> None:
    value = big_from_value()
    assert len(value) >= BIG_FIELD_BYTES > 64 * 1024
    assert _send(worker, value) == "accept"
    log = worker.wait_log("from=phish@account-alerts.example")
    assert "action=accept" in log.split("from=phish@account-alerts.example", 1)[1].splitlines()[0]


def test_a_field_over_the_raised_limit_is_explained_in_the_log(worker: Worker) -> None:
    """Beyond even the raised limit libmilter still ends the connection (the MTA then applies
    its default action), but the log says what happened instead of staying silent."""
    with pytest.raises(OSError):  # the worker closes the connection mid-packet
        _send(worker, big_from_value(MAX_PACKET_BYTES + 1024))
    log = worker.wait_log("connection ended inside the message header")
    assert "after 0 fields" in log  # the From field was the one cut
    # and the worker goes on serving
    assert _send(worker, "a@client.example") == "accept"


def test_the_packet_limit_reaches_the_libmilter_pymilter_runs_on() -> None:
    raise_packet_limit(123_456)
    assert raise_packet_limit(MAX_PACKET_BYTES) == 123_456


def test_an_abort_inside_the_header_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    ctx = milter_ctx()
    ctx._connect(ip="203.0.113.7")
    assert ctx._envfrom("<a@client.example>") == Milter.CONTINUE
    assert ctx._envrcpt("<user@test.example>") == Milter.CONTINUE
    ctx._data()
    ctx._header("Subject", "cut here")
    with caplog.at_level("WARNING", logger="milterfilters.milter"):
        ctx._abort()
    assert "connection ended inside the message header after 1 fields" in caplog.text


def test_an_abort_before_data_or_after_the_header_is_not_a_cut(caplog: pytest.LogCaptureFixture) -> None:
    ctx = milter_ctx()
    ctx._connect(ip="203.0.113.7")
    with caplog.at_level("WARNING", logger="milterfilters.milter"):
        assert feed(ctx, b"From: a@client.example\nSubject: hi\n\nhello\n") == Milter.ACCEPT
        ctx._envfrom("<a@client.example>")
        ctx._abort()  # e.g. RSET after MAIL
    assert "connection ended" not in caplog.text
