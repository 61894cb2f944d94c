"""Metrics export: the Prometheus names and labels (unit), and ``milterfilters run`` with
``[metrics] listen`` scraped over HTTP across a worker crash (process)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from milterfilters.metrics.prometheus import CATALOGUE, PREFIX, PrometheusMetrics
from tests.milter.test_server import GTUBE, Milter, rundir  # noqa: F401  (rundir: a fixture)
from tests.support.milterclient import final_action, one_message
from tests.support.redisserver import free_loopback_port as free_port
from tests.support.scrape import Samples, get, samples, value


def exported(metrics: PrometheusMetrics) -> Samples:
    assert metrics.registry is not None
    return samples(generate_latest(metrics.registry).decode())


def fresh() -> PrometheusMetrics:
    return PrometheusMetrics(registry=CollectorRegistry())


# -- names and labels ---------------------------------------------------------------------


def test_the_milters_metrics_are_exported_under_the_prefix_with_their_labels() -> None:
    m = fresh()
    m.inc("messages_total", action="reject")
    m.inc("findings_total", symbol="GTUBE")
    m.inc("dns_queries_total", type="TXT")
    m.inc("dns_cache_hits_total", type="TXT")
    m.inc("dns_timeouts_total", type="TXT")
    m.inc("filter_errors_total", filter="spf")
    m.inc("filter_timeouts_total", filter="spf")
    m.observe("filter_duration_seconds", 0.003, filter="gtube", stage="eom")
    m.info("model_info", "model_id", "abc-2026-01-01", filter="classifier")
    found = exported(m)
    assert all(name.startswith(PREFIX) for name, _ in found)
    assert value(found, "milterfilters_messages_total", action="reject") == 1
    assert value(found, "milterfilters_findings_total", symbol="GTUBE") == 1
    for name in ("dns_queries_total", "dns_cache_hits_total", "dns_timeouts_total"):
        assert value(found, PREFIX + name, type="TXT") == 1
    assert value(found, "milterfilters_filter_errors_total", filter="spf") == 1
    assert value(found, "milterfilters_filter_timeouts_total", filter="spf") == 1
    histogram = {"filter": "gtube", "stage": "eom"}
    assert value(found, "milterfilters_filter_duration_seconds_count", **histogram) == 1
    assert value(found, "milterfilters_filter_duration_seconds_bucket", le="0.005", **histogram) == 1
    assert value(found, "milterfilters_filter_duration_seconds_bucket", le="0.0025", **histogram) == 0
    assert value(found, "milterfilters_model_info", filter="classifier", model_id="abc-2026-01-01") == 1
    # the in-memory interface still answers as before
    assert m.get("messages_total", action="reject") == 1


def test_a_missing_label_is_empty_and_an_undeclared_one_is_dropped_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = fresh()
    m.inc("dns_errors_total", kind="budget")  # the resolver's budget error has no type
    with caplog.at_level(logging.WARNING, logger="milterfilters.metrics"):
        m.inc("messages_total", action="accept", extra="x")
        m.inc("messages_total", action="accept", extra="y")
    found = exported(m)
    assert value(found, "milterfilters_dns_errors_total", type="", kind="budget") == 1
    assert value(found, "milterfilters_messages_total", action="accept") == 2
    assert len([r for r in caplog.records if "extra" in r.getMessage()]) == 1


def test_a_plugins_metric_takes_its_first_labels_and_bad_names_are_skipped() -> None:
    m = fresh()
    m.inc("ratelimit_exceeded_total", what="rcpt", who="ip")
    m.inc("bad-name_total")
    m.observe("messages_total", 1.0, action="accept")  # a counter observed: not exported twice
    found = exported(m)
    assert value(found, "milterfilters_ratelimit_exceeded_total", what="rcpt", who="ip") == 1
    assert not any("bad" in name for name, _ in found)
    assert value(found, "milterfilters_messages_total", action="accept") is None
    assert m.get("bad-name_total") == 1  # still counted in memory


def test_the_catalogue_names_are_valid_and_counters_end_in_total() -> None:
    for name, spec in CATALOGUE.items():
        assert (spec.kind == "counter") == name.endswith("_total"), name
        assert all(label.isidentifier() for label in spec.labels)


@given(st.lists(st.tuples(st.sampled_from(["accept", "tag", "reject"]), st.integers(1, 5)), max_size=20))
def test_exported_counters_equal_the_in_memory_counts(increments: list[tuple[str, int]]) -> None:
    m = fresh()
    for action, amount in increments:
        m.inc("messages_total", amount, action=action)
    found = exported(m)
    for action in ("accept", "tag", "reject"):
        expected = m.get("messages_total", action=action)
        assert (value(found, "milterfilters_messages_total", action=action) or 0) == expected


@given(st.text(max_size=30))
def test_any_label_value_round_trips_through_the_exposition(text: str) -> None:
    m = fresh()
    m.inc("findings_total", symbol=text)
    assert value(exported(m), "milterfilters_findings_total", symbol=text) == 1


# -- the running milter ---------------------------------------------------------------------


def wait_health(port: int, status: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while get(port, "/healthz")[0] != status:
        assert time.monotonic() < deadline, f"/healthz never answered {status}"
        time.sleep(0.05)


def worker_pids(log: Path) -> list[int]:
    return [int(part.split()[0]) for part in log.read_text().split("started worker pid ")[1:]]


def test_run_serves_metrics_of_its_workers_across_a_crash(
    rundir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TMPDIR", str(rundir))  # where the run's metrics directory is made
    port = free_port()
    config = f'[milter]\nsocket_mode = "0666"\nworkers = 1\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    m = Milter(rundir, config).start()
    try:
        wait_health(port, 200)
        assert final_action(one_message(str(m.sock), GTUBE)) == "reject"
        assert final_action(one_message(str(m.sock), "hello\r\n")) == "accept"
        status, text = get(port, "/metrics")
        assert status == 200
        found = samples(text)
        assert value(found, "milterfilters_messages_total", action="reject") == 1
        assert value(found, "milterfilters_messages_total", action="accept") == 1
        assert value(found, "milterfilters_findings_total", symbol="GTUBE") == 1
        assert value(found, "milterfilters_filter_duration_seconds_count", filter="gtube", stage="eom") == 2
        assert value(found, "milterfilters_worker_restarts_total") == 0
        [model] = [labels for name, labels in found if name == "milterfilters_model_info"]
        assert ("filter", "classifier") in model
        first = worker_pids(m.log)[0]
        assert value(found, "milterfilters_worker_serving", pid=str(first)) == 1

        os.kill(first, signal.SIGKILL)
        wait_health(port, 503)  # during the restart backoff no worker serves
        m.wait_log("restarting in")
        wait_health(port, 200)
        found = samples(get(port, "/metrics")[1])
        assert value(found, "milterfilters_worker_restarts_total") == 1
        assert value(found, "milterfilters_workers_running") == 1
        # what the dead worker counted stays; its live gauge went with it
        assert value(found, "milterfilters_messages_total", action="reject") == 1
        second = worker_pids(m.log)[-1]
        serving = {dict(labels)["pid"] for name, labels in found if name == "milterfilters_worker_serving"}
        assert serving == {str(second)}
        assert get(port, "/nowhere")[0] == 404
    finally:
        m.stop()
    assert not list(rundir.glob("milterfilters-metrics-*")), "the metrics directory was left behind"


def test_a_taken_metrics_port_stops_start_up_with_one_line(rundir: Path) -> None:  # noqa: F811
    config = rundir / "m.toml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        sock = f"unix:{rundir / 's'}"
        command = [sys.executable, "-m", "milterfilters.cli", "run", "-c", str(config), "--socket", sock]
        r = subprocess.run(command, capture_output=True, timeout=60)
    assert r.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr.decode() and b"Traceback" not in r.stderr
