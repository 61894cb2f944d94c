"""Readers of the deployment examples in ``examples/`` (the systemd unit, the Postfix main.cf
lines, the Sendmail .mc lines), so that tests run the MTAs with exactly what the README tells
an admin to install."""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
POSTFIX_MAIN_CF = EXAMPLES / "postfix" / "main.cf"
SENDMAIL_MC = EXAMPLES / "sendmail" / "milterfilters.mc"
SYSTEMD_UNIT = EXAMPLES / "milterfilters.service"
#: Debian's queue_directory, the root of the chrooted Postfix services
DEBIAN_QUEUE_DIRECTORY = Path("/var/spool/postfix")


def postfix_settings(path: Path = POSTFIX_MAIN_CF) -> dict[str, str]:
    """The ``name = value`` settings of a main.cf (comments skipped, continuation lines joined)."""
    settings: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name is not None:
            settings[name] += " " + line.strip()
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not a main.cf setting: {line!r}")
        name = name.strip()
        settings[name] = value.strip()
    return settings


def postfix_queue_socket(settings: dict[str, str]) -> str:
    """The milter socket of ``smtpd_milters``, a path relative to the queue directory."""
    spec = settings["smtpd_milters"]
    if not spec.startswith("unix:") or spec.startswith("unix:/"):
        raise ValueError(f"smtpd_milters should be a unix socket relative to the queue directory: {spec}")
    return spec.removeprefix("unix:")


def sendmail_milter_lines(path: Path = SENDMAIL_MC) -> list[str]:
    """The .mc lines of the example, without its ``dnl`` comment lines."""
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("dnl")]


def sendmail_socket(lines: list[str]) -> Path:
    """The ``S=local:`` path of the example's INPUT_MAIL_FILTER."""
    for line in lines:
        match = re.match(r"INPUT_MAIL_FILTER\(`[^']+', `S=(?:local|unix):([^,']+)", line)
        if match:
            return Path(match.group(1))
    raise ValueError("no INPUT_MAIL_FILTER with S=local:PATH in the Sendmail example")


def unit_settings(path: Path = SYSTEMD_UNIT) -> dict[str, list[str]]:
    """``key -> values`` of the unit's [Service] section (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@dataclass(frozen=True)
class SocketDirectory:
    """The socket directory the unit makes before start (``install -d -o -g -m PATH``)."""

    path: Path
    owner: str
    group: str
    mode: int


def unit_socket_directory(path: Path = SYSTEMD_UNIT) -> SocketDirectory:
    """The directory the unit's ``ExecStartPre=… install -d`` makes for the socket."""
    for command in unit_settings(path).get("ExecStartPre", []):
        argv = shlex.split(command.lstrip("-+!@:"))
        if argv and argv[0].endswith("/install") and "-d" in argv:
            options = dict(itertools.pairwise(argv))
            return SocketDirectory(Path(argv[-1]), options["-o"], options["-g"], int(options["-m"], 8))
    raise ValueError(f"{path}: no ExecStartPre=install -d for the socket directory")
