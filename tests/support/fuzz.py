"""Hypothesis settings for the fuzz suites: a few seconds in CI, as long as asked for by
``scripts/fuzz.sh`` (which sets ``MILTERFILTERS_FUZZ_EXAMPLES`` and runs the suites again
and again with fresh seeds until its time is up)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def fuzz_settings(ci_examples: int) -> settings:
    """``ci_examples`` examples per test, or ``$MILTERFILTERS_FUZZ_EXAMPLES`` when set."""
    examples = int(os.environ.get("MILTERFILTERS_FUZZ_EXAMPLES", "0") or 0) or ci_examples
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
