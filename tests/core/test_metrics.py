"""The stdlib metrics interface: counters, observations, gauges, info swaps, and what the
chain reports through it (per-filter latency, findings by symbol)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milterfilters import Finding, Metrics, Stage, Verdict, evaluate
from milterfilters.core.chain import Chain, ChainLink
from tests.core.test_chain import MSG, chain_of, found, scripted


def test_observe_counts_and_sums_per_label_set() -> None:
    m = Metrics()
    m.observe("filter_duration_seconds", 0.25, filter="a")
    m.observe("filter_duration_seconds", 0.5, filter="a")
    m.observe("filter_duration_seconds", 1.0, filter="b")
    assert m.observations("filter_duration_seconds", filter="a") == (2, 0.75)
    assert m.observations("filter_duration_seconds", filter="c") == (0, 0.0)


def test_info_marks_the_replaced_value_not_live() -> None:
    m = Metrics()
    assert m.gauge("model_info", filter="classifier", model_id="one") is None
    m.info("model_info", "model_id", "one", filter="classifier")
    m.info("model_info", "model_id", "one", filter="classifier")
    assert m.gauge("model_info", filter="classifier", model_id="one") == 1.0
    m.info("model_info", "model_id", "two", filter="classifier")
    m.info("model_info", "model_id", "x", filter="other")  # another filter's model is its own
    assert m.gauge("model_info", filter="classifier", model_id="one") == 0.0
    assert m.gauge("model_info", filter="classifier", model_id="two") == 1.0
    assert m.gauge("model_info", filter="other", model_id="x") == 1.0


def test_chain_reports_each_filters_latency_and_the_findings_of_decided_messages() -> None:
    now = [0.0]

    def slow(ctx: object) -> Verdict:
        now[0] += 0.5
        return Verdict.found(Finding("SLOW"))

    links = [
        ChainLink(scripted("slow", {Stage.EOM: slow})),
        ChainLink(scripted("b", {Stage.EOM: found("B")})),
    ]
    chain = Chain(links, clock=lambda: now[0])
    evaluate(chain, MSG)
    evaluate(chain, MSG)
    assert chain.metrics.observations("filter_duration_seconds", filter="slow", stage="eom") == (2, 1.0)
    assert chain.metrics.observations("filter_duration_seconds", filter="b", stage="eom") == (2, 0.0)
    assert chain.metrics.get("findings_total", symbol="SLOW") == 2
    assert chain.metrics.get("findings_total", symbol="B") == 2


@given(st.lists(st.sampled_from(["A", "B", "C"]), max_size=6))
def test_findings_total_counts_every_finding_of_the_decision(symbols: list[str]) -> None:
    chain = chain_of(scripted("f", {Stage.EOM: found(*symbols)}))
    out = evaluate(chain, MSG)
    for symbol in "ABC":
        assert chain.metrics.get("findings_total", symbol=symbol) == symbols.count(symbol)
    assert chain.metrics.total("findings_total") == len(out.decision.findings)


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_set_and_gauge(value: float) -> None:
    m = Metrics()
    m.set("worker_serving", value)
    assert m.gauge("worker_serving") == value
