"""``[logging] target``: stderr, or syslog with facility mail through a unix datagram socket
(``[logging] syslog_socket``, /dev/log by default). The syslog daemon is played by a
:class:`SyslogReceiver` in a temporary folder."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from milterfilters.config import config_from_dict, load_config
from milterfilters.core.errors import ConfigError
from milterfilters.milter.worker import configure_logging
from tests.support.milterclient import final_action, one_message
from tests.support.syslogreceiver import SyslogReceiver

#: <priority> for facility mail (2) at severity info (6): 2 * 8 + 6
MAIL_INFO = "<22>"
SYSLOG_LINE = re.compile(r"^<(?P<pri>\d+)>milterfilters\[(?P<pid>\d+)\]: (?P<logger>\S+) (?P<level>[A-Z]+) ")


@pytest.fixture
def rundir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mf-log-") as d:
        yield Path(d)


@pytest.fixture
def syslog(rundir: Path) -> Iterator[SyslogReceiver]:
    with SyslogReceiver(rundir / "log.sock", rundir / "syslog.txt") as receiver:
        yield receiver


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def wait_for_line(receiver: SyslogReceiver, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in receiver.lines() if text in line]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in syslog:\n" + "\n".join(receiver.lines()))


def syslog_config(receiver: SyslogReceiver, **extra: str) -> dict[str, object]:
    return {"logging": {"target": "syslog", "syslog_socket": str(receiver.socket_path), **extra}}


def test_syslog_target_writes_mail_facility_lines_with_ident_and_pid(
    syslog: SyslogReceiver, restore_logging: None
) -> None:
    configure_logging(config_from_dict(syslog_config(syslog)))
    logging.getLogger("milterfilters.decision").info("queue_id=ABC123 action=accept")
    line = wait_for_line(syslog, "queue_id=ABC123")
    match = SYSLOG_LINE.match(line)
    assert match, line
    assert match["pri"] == MAIL_INFO.strip("<>")
    assert int(match["pid"]) == os.getpid()
    assert (match["logger"], match["level"]) == ("milterfilters.decision", "INFO")


def test_syslog_severity_follows_the_level_and_the_level_filters(
    syslog: SyslogReceiver, restore_logging: None
) -> None:
    configure_logging(config_from_dict(syslog_config(syslog, level="warning")))
    log = logging.getLogger("milterfilters.test")
    log.info("quiet-info")
    log.error("loud-error")
    line = wait_for_line(syslog, "loud-error")
    assert line.startswith("<19>")  # mail (2) * 8 + err (3)
    assert not any("quiet-info" in seen for seen in syslog.lines())


def test_stderr_stays_the_default_target(restore_logging: None) -> None:
    config = config_from_dict({})
    assert (config.logging.target, config.logging.syslog_socket) == ("stderr", "/dev/log")
    configure_logging(config)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr


def test_unreachable_syslog_socket_is_a_config_error_naming_the_key(
    rundir: Path, restore_logging: None
) -> None:
    before = logging.getLogger().handlers[:]
    missing = rundir / "no-such-log"
    with pytest.raises(ConfigError, match=r"logging\.syslog_socket: cannot reach syslog at .*no-such-log"):
        configure_logging(config_from_dict({"logging": {"target": "syslog", "syslog_socket": str(missing)}}))
    assert logging.getLogger().handlers == before  # the running setup stays


def test_relative_syslog_socket_is_refused_at_load(rundir: Path) -> None:
    path = rundir / "m.toml"
    path.write_text('[logging]\ntarget = "syslog"\nsyslog_socket = "dev/log"\n')
    with pytest.raises(ConfigError, match=r"m\.toml: logging.*syslog_socket must be an absolute path"):
        load_config(str(path))


def test_run_logs_one_decision_per_message_to_syslog_with_queue_id_and_no_content(
    rundir: Path, syslog: SyslogReceiver
) -> None:
    sock = rundir / "milter.sock"
    config = rundir / "milter.toml"
    logging_section = f'[logging]\ntarget = "syslog"\nsyslog_socket = "{syslog.socket_path}"\n'
    config.write_text(f'[milter]\nsocket_mode = "0600"\nworkers = 1\n{logging_section}')
    argv = [sys.executable, "-m", "milterfilters.cli", "run", "-c", str(config), "--socket", f"unix:{sock}"]
    with (rundir / "stderr.txt").open("wb") as stderr:
        proc = subprocess.Popen(argv, stdout=stderr, stderr=subprocess.STDOUT)
    try:
        wait_for_line(syslog, "listening on")
        secret_subject, secret_body = "Subject-token-5f1e", "body-token-9a7c"
        for _ in range(2):
            replies = one_message(str(sock), f"{secret_body}\r\n", subject=secret_subject)
            assert final_action(replies) == "accept"
        wait_for_line(syslog, "action=accept")
        time.sleep(0.3)  # a second line for the same message would have arrived by now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = syslog.lines()
    decisions = [line for line in lines if " milterfilters.decision " in line]
    assert len(decisions) == 2, "\n".join(lines)
    assert all(line.startswith(MAIL_INFO) and "queue_id=TESTQUEUE" in line for line in decisions)
    assert not any(secret_subject in line or secret_body in line for line in lines)
    pids = {m["pid"] for m in map(SYSLOG_LINE.match, lines) if m}
    assert len(pids) == 2, "the supervisor and the worker both log, each with its own pid"
    assert "milterfilters" not in (rundir / "stderr.txt").read_text()
