from pathlib import Path

import pytest

from milterfilters.cli import main
from milterfilters.config import load_config
from milterfilters.core.schema import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "milterfilters.toml"
    p.write_text(text)
    return p


def test_embedded_default_needs_no_file() -> None:
    config = load_config(None)
    assert config.milter.socket
    assert config.dns.timeout > 0
    assert [f.name for f in config.enabled_filters][:1]
    assert config.weights()["GTUBE"] >= 15


def test_values_are_typed(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[milter]\nsocket = "unix:/tmp/x.sock"\nauthserv_id = "mx.example.net"\n'
            '[dns]\nnameservers = ["127.0.0.1:5353"]\ntimeout = 2\n'
            "[actions]\ntag = 4\nreject = 9.5\n[scores]\nGTUBE = 5\n[gtube]\ndry_run = true\n",
        )
    )
    assert config.dns.nameservers == ("127.0.0.1:5353",)
    assert config.dns.timeout == 2.0 and isinstance(config.dns.timeout, float)
    assert config.milter.effective_authserv_id == "mx.example.net"
    assert config.weights()["GTUBE"] == 5.0
    assert config.filter("gtube").settings.dry_run is True


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[milter]\nsocet = 'x'\n", "milter.socet", "unknown key"),
        ("[dns]\ntimeout = 'fast'\n", "dns.timeout", "expected a number"),
        ("[dns]\nnameservers = '1.2.3.4'\n", "dns.nameservers", "a list"),
        ("[bogus]\nx = 1\n", "bogus", "unknown section"),
        ("[gtube]\nenabled = 'yes'\n", "gtube.enabled", "true or false"),
        ("[gtube]\non_error = 'explode'\n", "gtube.on_error", "'tempfail'"),
        ("[size]\nmax_byte = 1\n", "size.max_byte", "known keys"),
        ("[scores]\nGTUBE = 'high'\n", "scores.GTUBE", "number"),
        ("[milter]\nsocket = 'tcp:nowhere'\n", "milter", "unknown family"),
        ("[actions]\ntag = 20\nreject = 10\n", "actions", "tag <= quarantine <= reject"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.source == str(path)
    assert err.value.key == key
    assert words in str(err.value)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[milter\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_config_command_prints_every_default_and_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    for key in (
        "[milter]",
        "socket =",
        "authserv_id",
        "[dns]",
        "nameservers",
        "timeout",
        "[gtube]",
        "on_error",
    ):
        assert key in text
    # the printed configuration is itself a valid configuration
    again = load_config(write(tmp_path, text))
    assert again.milter == load_config(None).milter
    assert again.weights() == load_config(None).weights()


def test_cli_reports_config_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[dns]\ntimeout = -1\n")
    assert main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "dns" in err
