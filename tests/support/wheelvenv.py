"""Build the project's wheel and install it into a fresh venv, offline and quick.

The wheel is built from a copy of the sources with the project venv's setuptools (no build
isolation); the fresh venv gets the wheel alone (``--no-index --no-deps``) and borrows its
third-party dependencies from the project venv through a ``.pth`` line. Used by
tests/test_packaging.py and the deployment end-to-end test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

#: what a build needs from the checkout (a file the build starts to need fails this test)
SOURCES = ("pyproject.toml", "setup.py", "README.md", "milterfilters", "models")


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command with a bare environment (no venv on PATH), capturing its output."""
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def build_wheel(src: Path, out: Path) -> Path:
    """The wheel built in ``out`` from a copy of the sources in ``src`` (the checkout gets no
    build/ or egg-info)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = PROJECT_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    ok(run(sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
             "-w", out, src, cwd=src))
    (built,) = out.glob("milterfilters-*.whl")
    return built


def fresh_venv(wheel: Path, root: Path) -> Path:
    """A fresh venv at ``root`` (no system site-packages) holding the wheel; its dependencies
    lent by a .pth line."""
    ok(run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root.parent))
    python = root / "bin" / "python"
    site = Path(ok(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                         cwd=root)).strip())
    lent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_project_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(lent)))
    ok(run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--no-deps",
             wheel, cwd=root))
    return root


