"""The deployment examples agree with each other and with the README, which shows them verbatim:
the unit makes the socket's directory where Postfix's main.cf lines look (relative to the queue
directory), the Sendmail lines point into the unit's RuntimeDirectory, and systemd accepts the
unit. (test_debian_deploy.py runs the MTAs with them.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from milterfilters.config import load_config

from .deploy_examples import (
    DEBIAN_QUEUE_DIRECTORY,
    EXAMPLES,
    POSTFIX_MAIN_CF,
    SENDMAIL_MC,
    SYSTEMD_UNIT,
    postfix_queue_socket,
    postfix_settings,
    sendmail_milter_lines,
    sendmail_socket,
    unit_settings,
    unit_socket_directory,
)

README = EXAMPLES.parent / "README.md"


def readme_files() -> dict[str, str]:
    """``path -> fenced block`` for each ``<!-- readme-file: PATH -->`` marker of the README."""
    pattern = re.compile(r"<!-- readme-file: (\S+) -->\n```[a-z]*\n(.*?)```", re.S)
    return {path: block for path, block in pattern.findall(README.read_text())}


@pytest.mark.parametrize("example", [POSTFIX_MAIN_CF, SENDMAIL_MC, SYSTEMD_UNIT], ids=lambda p: p.name)
def test_the_readme_shows_each_example_file_verbatim(example: Path) -> None:
    shown = readme_files()
    name = str(example.relative_to(EXAMPLES.parent))
    assert name in shown, f"README has no <!-- readme-file: {name} --> block"
    assert shown[name] == example.read_text()


def test_the_readme_has_no_other_milter_socket_lines() -> None:
    """Outside the example blocks, no Postfix or Sendmail socket line the admin could copy instead."""
    text = README.read_text()
    for block in readme_files().values():
        text = text.replace(block, "")
    assert "smtpd_milters = unix:/" not in text
    assert "INPUT_MAIL_FILTER(" not in text


def test_the_unit_makes_the_socket_directory_postfix_looks_in() -> None:
    made = unit_socket_directory()
    socket = DEBIAN_QUEUE_DIRECTORY / postfix_queue_socket(postfix_settings())
    assert made.path == socket.parent
    assert (made.owner, made.group) == ("milterfilters", "postfix")
    assert made.mode & 0o2000 and not made.mode & 0o007  # setgid postfix, nothing for others
    assert f"-{made.path}" in unit_settings()["ReadWritePaths"]
    # the production example config listens exactly there, group postfix
    milter = load_config(str(EXAMPLES / "milterfilters.toml")).milter
    assert milter.socket == f"unix:{socket}"
    assert (milter.socket_group, milter.socket_mode) == ("postfix", "0660")


def test_the_sendmail_socket_is_in_the_units_runtime_directory() -> None:
    settings = unit_settings()
    (runtime,) = settings["RuntimeDirectory"]
    assert sendmail_socket(sendmail_milter_lines()).parent == Path("/run") / runtime
    assert settings["User"] == ["milterfilters"]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["Restart"] == ["on-failure"]


def test_the_postfix_lines_tempfail_without_the_milter() -> None:
    settings = postfix_settings()
    assert settings["milter_default_action"] == "tempfail"
    assert settings["non_smtpd_milters"] == "$smtpd_milters"
    assert settings["milter_protocol"] == "6"
    assert "F=T" in sendmail_milter_lines()[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: stand in /bin/true for the venv's milterfilters
    unit = tmp_path / "milterfilters.service"
    unit.write_text(SYSTEMD_UNIT.read_text().replace("/opt/milterfilters/bin/milterfilters", "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0 and "milterfilters.service" not in result.stderr, result.stderr
