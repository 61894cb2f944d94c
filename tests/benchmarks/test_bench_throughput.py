"""The end-to-end throughput benchmark's load plan: every message sent once, in sessions of the
asked size, the sessions shared fairly among the client processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_throughput import batches_of, deal, ratios, spread


@given(n=st.integers(0, 500), per_session=st.integers(1, 30))
def test_sessions_carry_every_message_once_in_order(n: int, per_session: int) -> None:
    batches = batches_of(n, per_session)
    assert [i for b in batches for i in b] == list(range(n))
    assert all(1 <= len(b) <= per_session for b in batches)
    assert all(len(b) == per_session for b in batches[:-1])  # only the last session is short


@given(n=st.integers(0, 500), per_session=st.integers(1, 30), hands=st.integers(1, 8))
def test_dealing_sessions_to_processes_loses_none_and_is_fair(n: int, per_session: int, hands: int) -> None:
    batches = batches_of(n, per_session)
    dealt = deal(batches, hands)
    assert len(dealt) == hands
    assert sorted(i for hand in dealt for b in hand for i in b) == list(range(n))
    sizes = [len(hand) for hand in dealt]
    assert max(sizes) - min(sizes) <= 1


def test_ratios_pair_rounds_and_refuse_unequal_rounds() -> None:
    assert ratios([100.0, 90.0], [200.0, 300.0]) == [0.5, 0.3]
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])


@given(items=st.lists(st.integers(), min_size=1, max_size=60, unique=True), n=st.integers(0, 300))
def test_the_sample_spreads_evenly_over_the_split(items: list[int], n: int) -> None:
    sample = spread(items, n)
    assert len(sample) == n
    counts = [sample.count(x) for x in items]
    assert max(counts) - min(counts) <= 1  # no row favoured: the split's mix is kept
    assert [items.index(x) for x in sample] == sorted(items.index(x) for x in sample)  # split order
