"""Every TOML file shipped in examples/ is a valid configuration."""

from pathlib import Path

import pytest

from milterfilters.config import load_config
from tests.support.paths import PROJECT_ROOT

EXAMPLES = sorted((PROJECT_ROOT / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.source == str(path)
    assert config.enabled_filters


def test_production_example_enables_the_authentication_filters() -> None:
    config = load_config(PROJECT_ROOT / "examples" / "milterfilters.toml")
    enabled = {f.name for f in config.enabled_filters}
    assert {"relay", "ratelimit", "spf", "dkim", "dmarc"} <= enabled
