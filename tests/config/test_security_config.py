"""Issue 10, strict configuration: a value that would let mail through, fail every message or
crash the loader is refused at load — by ``milterfilters config``, at start-up and at SIGHUP —
with one line naming the file and the key."""

from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from milterfilters.config import config_from_dict, load_config
from milterfilters.config.loader import SECTIONS
from milterfilters.config.registry import available_filters
from milterfilters.core.filter import FilterSettings
from milterfilters.core.schema import ConfigError
from tests.milter.test_server import GTUBE, Milter, rundir  # noqa: F401  (rundir is a fixture)
from tests.support.milterclient import final_action, one_message


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "milterfilters.toml"
    path.write_text(text)
    return path


def _config_command(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _refused(tmp_path: Path, text: str, key: str) -> ConfigError:
    """Load ``text``; assert a ConfigError naming the file and ``key`` on one line."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = str(caught.value)
    assert str(path) in line and key in line and "\n" not in line and "\r" not in line
    return caught.value


HOSTILE_CASES = {
    # name of the attack: (TOML, key named in the refusal)
    "gtube_weight_nan_lets_gtube_through": ("[scores]\nGTUBE = nan\n", "scores.GTUBE"),
    "weight_infinite": ("[scores]\nSPF_FAIL = -inf\n", "scores.SPF_FAIL"),
    "weight_so_large_a_sum_overflows": ("[scores]\nSPF_FAIL = 1e308\n", "scores.SPF_FAIL"),
    "reject_threshold_nan_only_tags": ("[actions]\nreject = nan\n", "actions.reject"),
    "tag_threshold_infinite": ("[actions]\ntag = inf\nreject = inf\n", "actions.tag"),
    "dns_timeout_nan_makes_every_lookup_temperror": ("[dns]\ntimeout = nan\n", "dns.timeout"),
    "dns_timeout_huge_overflows_waits": ("[dns]\ntimeout = 1e300\n", "dns.timeout"),
    "filter_timeout_infinite": ("[gtube]\ntimeout = inf\n", "gtube.timeout"),
    "filter_timeout_zero": ("[gtube]\ntimeout = 0\n", "gtube.timeout"),
    "integer_beyond_64_bits": ("[dns]\ncache_size = 100000000000000000000000\n", "dns.cache_size"),
    "integer_too_large_for_a_float": (f"[dns]\ntimeout = {10**400}\n", "dns.timeout"),
    "milter_timeout_zero": ("[milter]\ntimeout = 0\n", "milter.timeout"),
    "reject_text_with_crlf_fails_every_message": (
        '[actions]\nreject_text = "spam\\r\\n250 OK"\n',
        "actions.reject_text",
    ),
    "reject_text_over_400_characters": (f'[actions]\nreject_text = "{"x" * 401}"\n', "actions.reject_text"),
    "reject_text_not_ascii": ('[actions]\nreject_text = "Spam refus\u00e9"\n', "actions.reject_text"),
    "spf_explanation_with_crlf": (
        '[spf]\ndefault_explanation = "no\\r\\nX-Injected: yes"\n',
        "spf.default_explanation",
    ),
    "spf_explanation_over_400_characters": (
        f'[spf]\ndefault_explanation = "{"y" * 500}"\n',
        "spf.default_explanation",
    ),
    "authserv_id_with_crlf_injects_a_header": (
        '[milter]\nauthserv_id = "mx.example.org\\r\\nX-Evil: 1"\n',
        "milter.authserv_id",
    ),
    "authserv_id_with_semicolon_adds_results": (
        '[milter]\nauthserv_id = "mx.example.org; dkim=pass"\n',
        "milter.authserv_id",
    ),
    "authserv_id_with_space": ('[milter]\nauthserv_id = "mx example"\n', "milter.authserv_id"),
    "subject_prefix_with_newline": (
        '[actions]\nsubject_prefix = "[SPAM]\\nBcc: x"\n',
        "actions.subject_prefix",
    ),
    "deep_nesting_in_a_known_section": (
        "[milter]\nsocket_mode = " + "[" * 40 + "]" * 40 + "\n",
        "milter.socket_mode",
    ),
}


@pytest.mark.parametrize("text,key", HOSTILE_CASES.values(), ids=HOSTILE_CASES.keys())
def test_hostile_value_is_refused_at_load_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    _refused(tmp_path, text, key)


@pytest.mark.parametrize("text,key", HOSTILE_CASES.values(), ids=HOSTILE_CASES.keys())
def test_config_command_exits_2_with_one_line(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    result = _config_command(path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert str(path) in lines[0] and key in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("depth", [600, 5000])
def test_deeply_nested_toml_gives_a_config_error_not_recursion_error(tmp_path: Path, depth: int) -> None:
    for text in (f"a = {'[' * depth}{']' * depth}\n", f"a = {'{b = ' * depth}1{'}' * depth}\n"):
        error = _refused(tmp_path, text, "line 1 (key a)")
        assert "nests deeper" in str(error)


def test_deep_dotted_tables_are_refused_naming_the_key() -> None:
    data: dict[str, Any] = {}
    inner = data.setdefault("milter", {})
    for _ in range(100):
        inner = inner.setdefault("x", {})
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, source="deep.toml")
    assert caught.value.key.startswith("milter.x.x") and "deep.toml" in str(caught.value)


def test_hostile_key_cannot_break_the_error_line() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"scores": {"X\r\nY\u2028Z": float("nan")}}, source="f.toml")
    text = str(caught.value)
    assert "\r" not in text and "\n" not in text and "\u2028" not in text
    assert "f.toml" in text and 'scores."X\\r\\nY' in text


def test_huge_value_is_cut_in_the_error_line() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"dns": {"timeout": "x" * 100_000}})
    assert len(str(caught.value)) < 600 and "dns.timeout" in str(caught.value)


def _float_fields() -> list[tuple[str, str]]:
    """(section, key) of every float setting of the configuration and of every filter."""
    classes: list[tuple[str, type]] = list(SECTIONS.items())
    for name, cls in available_filters().items():
        classes += [(name, FilterSettings), (name, cls.Options)]
    found = []
    for section, cls in classes:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (float, float | None):
                found.append((section, f.name))
    return found


@pytest.mark.parametrize("section,key", _float_fields())
@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_every_float_setting_refuses_non_finite_numbers(section: str, key: str, number: float) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({section: {key: number}}, source="n.toml")
    assert caught.value.key == f"{section}.{key}"


def test_valid_limits_still_load(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            '[milter]\nauthserv_id = "mx-1.example.org."\n[actions]\ntag = -5\nreject = 1000000\n'
            f'reject_text = "{"z" * 400}"\n[scores]\nGTUBE = -1000000\n[dns]\ntimeout = 86400\n'
            "[gtube]\ntimeout = 0.001\n",
        )
    )
    assert config.actions.reject == 1_000_000 and config.weights()["GTUBE"] == -1_000_000
    assert config.milter.authserv_id == "mx-1.example.org."


def test_sighup_with_a_nan_weight_keeps_the_running_configuration(rundir: Path) -> None:  # noqa: F811
    milter = Milter(rundir, '[milter]\nsocket_mode = "0666"\n').start()
    try:
        assert milter.proc is not None
        milter.config.write_text('[milter]\nsocket_mode = "0666"\n[scores]\nGTUBE = nan\n')
        milter.proc.send_signal(signal.SIGHUP)
        milter.wait_log("reload refused")
        refusal = next(line for line in milter.log.read_text().splitlines() if "reload refused" in line)
        assert str(milter.config) in refusal and "scores.GTUBE" in refusal
        assert milter.proc.poll() is None
        assert final_action(one_message(str(milter.sock), GTUBE)) == "reject"
    finally:
        milter.stop()
