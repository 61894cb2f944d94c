"""`check` over thousands of real messages (8-bit garbage, broken MIME, bogus charsets)
never errors: every message gets a decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import milterfilters
from milterfilters.cli import main

CONFIG = """
[dns]
# nothing listens here: lookups fail at once and nothing leaves the machine
nameservers = ["127.0.0.1:9"]
timeout = 0.5
"""


@pytest.fixture(scope="module")
def offline_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "offline.toml"
    p.write_text(CONFIG)
    return p


def corpus_files(corpus_dir: Path) -> list[Path]:
    return sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")


def test_every_corpus_message_gets_a_decision(corpus_dir: Path, offline_config: Path) -> None:
    files = corpus_files(corpus_dir)
    assert len(files) == 6046
    chain = milterfilters.build_chain(offline_config)
    actions = {}
    for path in files:
        outcome = milterfilters.evaluate(
            chain, path.read_bytes(), client_ip="203.0.113.5", recipients=["user@example.net"]
        )
        assert not outcome.decision.errors, (path, outcome.decision.errors)
        actions[path] = outcome.action
    assert all(
        a
        in (
            milterfilters.Action.ACCEPT,
            milterfilters.Action.TAG,
            milterfilters.Action.REJECT,
            milterfilters.Action.QUARANTINE,
        )
        for a in actions.values()
    )


def test_check_cli_on_a_folder_sample(
    corpus_dir: Path, offline_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = corpus_files(corpus_dir)[::120]
    assert len(files) > 40
    for path in files:
        assert (
            main(["check", "--json", "--config", str(offline_config), "--rcpt", "u@example.net", str(path)])
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        assert out["action"] in ("accept", "tag", "quarantine", "reject")
        assert out["errors"] == []
