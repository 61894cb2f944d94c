"""Third-party filters load through the ``milterfilters.filters`` entry-point group and are
validated when loaded. The example plugin in examples/plugin-example is loaded for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from milterfilters.config.registry import PluginError, validate_filter_class
from milterfilters.core.filter import Filter
from tests.support.paths import PROJECT_ROOT

PLUGIN_DIR = PROJECT_ROOT / "examples" / "plugin-example"


def install_entry_point(site: Path, name: str, target: str) -> None:
    """Make an entry point visible to importlib.metadata, as pip would."""
    dist = site / "example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[milterfilters.filters]\n{name} = {target}\n")


def run_cli(site: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN_DIR)])}
    return subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
    )


def test_example_plugin_is_loaded_configured_and_run(tmp_path: Path) -> None:
    install_entry_point(tmp_path / "site", "subject_rules", "milterfilters_subject_rules:SubjectRulesFilter")
    config = tmp_path / "c.toml"
    config.write_text('[subject_rules]\npatterns = ["(?i)act now"]\n[scores]\nSUBJECT_RULE = 7.0\n')
    shown = run_cli(tmp_path / "site", "config", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert b"[subject_rules]" in shown.stdout and b"SUBJECT_RULE = 7.0" in shown.stdout
    r = run_cli(
        tmp_path / "site",
        "check",
        "--json",
        "--config",
        str(config),
        "-",
        stdin=b"Subject: ACT NOW, limited offer\n\nbody\n",
    )
    out = json.loads(r.stdout)
    assert out["action"] == "tag"
    assert [s["name"] for s in out["symbols"]] == ["SUBJECT_RULE"]


def test_plugin_options_are_validated_at_start_up(tmp_path: Path) -> None:
    install_entry_point(tmp_path / "site", "subject_rules", "milterfilters_subject_rules:SubjectRulesFilter")
    config = tmp_path / "c.toml"
    config.write_text('[subject_rules]\npatterns = ["(unclosed"]\n')
    r = run_cli(tmp_path / "site", "config", "--config", str(config))
    assert r.returncode == 2 and b"subject_rules" in r.stderr


def test_broken_plugin_is_named_at_load(tmp_path: Path) -> None:
    install_entry_point(tmp_path / "site", "broken", "no_such_module:Nothing")
    r = run_cli(tmp_path / "site", "config")
    assert r.returncode == 2
    assert b"plugin filter 'broken'" in r.stderr


class NoStages(Filter):
    name = "nostages"


class WrongName(Filter):
    name = "other"

    def eom(self, ctx):  # type: ignore[no-untyped-def]
        return None


@pytest.mark.parametrize(
    ("cls", "name", "words"),
    [
        (object, "x", "not a milterfilters.Filter"),
        (NoStages, "nostages", "no stage"),
        (WrongName, "wrong", "declares"),
    ],
)
def test_bad_filter_classes_are_refused(cls: type, name: str, words: str) -> None:
    with pytest.raises(PluginError, match=words):
        validate_filter_class(cls, name)
