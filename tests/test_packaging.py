"""The built wheel is a working milter: installed (not editable) into a fresh venv, its
``milterfilters`` command runs ``check`` with the shipped model and tells its ``--version``.

Offline and quick: the wheel is built from a copy of the sources with the project venv's
setuptools (no build isolation), and the fresh venv gets the wheel alone (``--no-index
--no-deps``); its third-party dependencies come from the project venv through a ``.pth``
line, and ``pip check`` confirms they meet what the wheel declares. Everything of
milterfilters — code, model, entry point — comes from the wheel: the test asserts where.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import milterfilters
from milterfilters.builtin.gtube import GTUBE
from tests.support.dnsserver import DnsTestServer
from tests.support.paths import PROJECT_ROOT
from tests.support.wheelvenv import build_wheel, fresh_venv, ok, run

pytestmark = pytest.mark.slow

HEADER = (
    b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: %s\r\n"
    b"Message-ID: <%s@example.org>\r\n\r\n"
)
PLAIN = HEADER % (b"lunch on friday", b"plain") + (
    b"Hi Bob,\r\nare we still on for lunch on Friday at noon? I can book the usual table by the\r\n"
    b"window if you like, and bring the notes from Tuesday's meeting.\r\n\r\nAlice\r\n"
)
SPAM_TEST = HEADER % (b"test", b"gtube") + GTUBE + b"\r\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (the checkout gets no build/ or egg-info)."""
    return build_wheel(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) holding the wheel; dependencies lent by a .pth line."""
    return fresh_venv(wheel, tmp_path_factory.mktemp("venv") / "fresh")


def test_wheel_carries_the_shipped_model(wheel: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (PROJECT_ROOT / "models").iterdir() if p.is_file()}
    assert {f"milterfilters/models/{name}" for name in shipped} <= names
    assert "milterfilters/py.typed" in names


def test_installed_package_is_the_wheel_with_its_model(venv: Path) -> None:
    code = (
        "import json, milterfilters; from milterfilters.classifier.paths import DEFAULT_MODEL_DIR as d; "
        "from milterfilters.classifier.model import load_model; load_model(d); "
        "print(json.dumps([milterfilters.__file__, str(d)]))"
    )
    package, model = json.loads(ok(run(venv / "bin" / "python", "-c", code, cwd=venv)))
    assert Path(package).is_relative_to(venv), package
    assert Path(model).is_relative_to(venv) and Path(model).name == "models", model


def test_installed_dependencies_meet_the_wheel_requirements(venv: Path) -> None:
    ok(run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "check", cwd=venv))


def test_installed_version_is_the_source_version(venv: Path) -> None:
    out = ok(run(venv / "bin" / "milterfilters", "--version", cwd=venv))
    assert out.strip() == f"milterfilters {milterfilters.__version__}"


@pytest.mark.parametrize(
    ("message", "action", "symbol"), [(SPAM_TEST, "reject", "GTUBE"), (PLAIN, "accept", "CLASSIFIER_HAM")]
)
def test_installed_check_decides_with_the_default_model(
    venv: Path, tmp_path: Path, dns_server: DnsTestServer, message: bytes, action: str, symbol: str
) -> None:
    config = tmp_path / "dns.toml"
    config.write_text(f'[dns]\nnameservers = ["{dns_server.address}"]\ntimeout = 1.0\n')
    path = tmp_path / "message.eml"
    path.write_bytes(message)
    out = ok(run(venv / "bin" / "milterfilters", "check", "--json", "-c", config,
                   "--client-ip", "203.0.113.5", "--rcpt", "bob@example.net", path, cwd=tmp_path))
    result = json.loads(out)
    assert result["action"] == action, result
    assert symbol in {s["name"] for s in result["symbols"]}, result
