"""``milterfilters config --check``: everything the milter would load, or one line and exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from milterfilters.classifier.paths import DEFAULT_MODEL_DIR
from milterfilters.cli import main
from tests.support.defaultconfig import DEAD_NAMESERVER

DNS = f'[dns]\nnameservers = ["{DEAD_NAMESERVER}"]\n'


def config_check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["config", "--check", "--config", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "milterfilters.toml"
    path.write_text(DNS + text)
    return path


def test_a_working_configuration_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = config_check(write(tmp_path, f'[milter]\nsocket = "unix:{tmp_path}/m.sock"\n'), capsys)
    assert (status, err) == (0, "")
    assert out.startswith("configuration OK: ") and "classifier" in out


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            '[milter]\nsocket = "unix:{tmp}/m.sock"\nsocket_group = "no-such-group-x"\n',
            "milter.socket_group",
            "does not exist",
        ),
        ('[milter]\nsocket = "unix:{tmp}/absent/m.sock"\n', "milter.socket", "does not exist"),
        (
            '[dkim_sign]\nenabled = true\nkeys = [{{ domain = "example.com", selector = "s", '
            'key_file = "{tmp}/none.key", algorithm = "rsa-sha256" }}]\n',
            "dkim_sign",
            "none.key",
        ),
        ('[classifier]\nmodel = "{tmp}/model"\n', "classifier.model", "corrupt"),
    ],
    ids=["socket group", "socket directory", "dkim key file", "corrupt model"],
)
def test_a_problem_is_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, problem: str
) -> None:
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    weights = model / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-100])
    path = write(tmp_path, text.format(tmp=tmp_path))
    status, out, err = config_check(path, capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert f"{path}: {key}" in err and problem in err


def test_the_dns_settings_must_give_a_resolver(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Here /etc/resolv.conf is made unreadable for tests (tests/conftest.py): the system
    resolver a configuration without nameservers needs is missing, and that is a problem."""
    path = tmp_path / "c.toml"
    path.write_text("[gtube]\nenabled = true\n")
    status, _, err = config_check(path, capsys)
    assert status == 2 and f"{path}: dns.nameservers: no system resolver" in err


def test_without_check_a_corrupt_model_is_not_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain ``config`` prints; only ``--check`` loads (so printing stays cheap)."""
    path = write(tmp_path, f'[classifier]\nmodel = "{tmp_path}/absent"\n')
    assert main(["config", "--config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"# effective configuration from {path}")


def test_config_and_check_end_quietly_when_the_reader_goes_away() -> None:
    """``| true`` is gone before Python has started: every write finds the pipe closed."""
    for command in ("config", "check --json"):
        r = subprocess.run(
            f"{sys.executable} -m milterfilters.cli {command} </dev/null | true; "
            "echo status=${PIPESTATUS[0]}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            timeout=120,
        )
        assert b"Traceback" not in r.stderr and b"Error" not in r.stderr, r.stderr.decode()
        assert r.stdout == b"status=0\n"
