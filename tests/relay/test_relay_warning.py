"""The "neither local_domains nor relay_domains" warning: once per process, not per chain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import milterfilters
from milterfilters.relay.filter import WARNED_ENV
from tests.milter.test_server import Milter
from tests.support.defaultconfig import DEAD_NAMESERVER, default_config

WARNING = "neither local_domains nor relay_domains"


def test_building_chains_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(WARNED_ENV, raising=False)
    for _ in range(3):
        milterfilters.build_chain(default_config()).close()
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if WARNING in r.message)
    ) == 1


def test_a_configuration_that_knows_its_domains_does_not_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(WARNED_ENV, raising=False)
    milterfilters.build_chain({"relay": {"local_domains": ["example.org"]}}).close()
    assert not [r for r in caplog.records if WARNING in r.message]


def test_check_warns_once() -> None:
    env = {k: v for k, v in os.environ.items() if k != WARNED_ENV}
    r = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "check", "-"],
        input=b"Subject: x\n\nhello\n",
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().count(WARNING) == 1


def test_run_names_its_configuration_and_warns_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The supervisor and its worker both build the chain; the warning appears once."""
    monkeypatch.delenv(WARNED_ENV, raising=False)
    milter = Milter(tmp_path, f'[dns]\nnameservers = ["{DEAD_NAMESERVER}"]\n').start()
    try:
        milter.wait_log("configuration: ")
        log = milter.log.read_text()
        assert f"configuration: {milter.config} (from --config)" in log
        assert log.count(WARNING) == 1
    finally:
        milter.stop()
