"""``[milter] workers = 2``: two libmilter processes accept on the supervisor's one socket,
each restarted on its own, all reloaded by SIGHUP and stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.milter.test_server import GTUBE, Milter, rundir  # noqa: F401
from tests.support.milterclient import final_action, one_message

TWO_WORKERS = '[milter]\nsocket_mode = "0666"\nworkers = 2\n'


def started_pids(m: Milter) -> list[int]:
    return [int(p) for p in re.findall(r"started worker pid (\d+)", m.log.read_text())]


def pids_logging(m: Milter, text: str) -> Counter[int]:
    """How many lines containing ``text`` each process logged."""
    return Counter(int(p) for p in re.findall(r"\[(\d+)\] \w+ .*" + re.escape(text), m.log.read_text()))


def decisions_by_pid(m: Milter) -> Counter[int]:
    return Counter(int(p) for p in re.findall(r"milterfilters\.decision\[(\d+)\]", m.log.read_text()))


def wait_for(condition, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def start_two(rundir: Path) -> Milter:  # noqa: F811
    m = Milter(rundir, TWO_WORKERS).start()
    wait_for(lambda: m.log.read_text().count("listening on") == 2, "both workers listening")
    return m


def send_concurrently(m: Milter, n: int, body: str = GTUBE) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: one_message(str(m.sock), body), range(n)))
    return [final_action(r) for r in replies]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_two_workers_serve_transactions_on_one_socket(rundir: Path) -> None:  # noqa: F811
    m = start_two(rundir)
    try:
        workers = started_pids(m)
        assert len(workers) == 2
        assert send_concurrently(m, 60) == ["reject"] * 60
        wait_for(lambda: sum(decisions_by_pid(m).values()) == 60, "60 decisions logged")
        served = decisions_by_pid(m)
        assert set(served) == set(workers), served  # both served, nobody else did
    finally:
        m.stop()


def test_killing_one_worker_restarts_only_it_while_the_other_serves(rundir: Path) -> None:  # noqa: F811
    m = start_two(rundir)
    try:
        victim, survivor = started_pids(m)
        os.kill(victim, signal.SIGKILL)
        m.wait_log(f"worker pid {victim} exited")
        before = decisions_by_pid(m)[survivor]
        # during the restart backoff the survivor takes every connection
        assert send_concurrently(m, 10) == ["reject"] * 10
        wait_for(lambda: decisions_by_pid(m)[survivor] == before + 10, "the survivor served all")
        wait_for(lambda: len(started_pids(m)) == 3, "a replacement worker")
        replacement = started_pids(m)[-1]
        assert alive(survivor) and alive(replacement) and not alive(victim)
        wait_for(lambda: pids_logging(m, "listening on")[replacement] == 1, "the replacement listening")
        assert m.log.read_text().count("restarting in") == 1
    finally:
        m.stop()


def test_sighup_reloads_every_worker(rundir: Path) -> None:  # noqa: F811
    m = start_two(rundir)
    try:
        workers = started_pids(m)
        assert m.proc is not None
        m.config.write_text(TWO_WORKERS + "[scores]\nGTUBE = 7.0\n")
        m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(pids_logging(m, "reloaded configuration")) == set(workers), "both reloaded")
        assert send_concurrently(m, 20) == ["accept"] * 20  # the new policy, whichever worker
        assert started_pids(m) == workers  # reloaded, not restarted
    finally:
        m.stop()


def test_sigterm_stops_every_worker_and_removes_the_socket(rundir: Path) -> None:  # noqa: F811
    m = start_two(rundir)
    workers = started_pids(m)
    send_concurrently(m, 4)
    assert m.stop() < 10
    assert m.proc is not None and m.proc.returncode == 0
    assert not any(alive(pid) for pid in workers)
    assert not m.sock.exists()


def test_memory_rate_limits_with_several_workers_are_warned_about(
    rundir: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    from milterfilters.config import load_config
    from milterfilters.milter.server import warn_per_worker_state

    config = rundir / "m.toml"
    for workers, backend, warned in ((2, "memory", True), (1, "memory", False), (2, "redis", False)):
        config.write_text(
            f'[milter]\nworkers = {workers}\n[ratelimit]\nenabled = true\nbackend = "{backend}"\n'
        )
        caplog.clear()
        warn_per_worker_state(load_config(str(config)))
        assert ("each worker counts on its own" in caplog.text) is warned, (workers, backend)


def test_a_worker_that_cannot_restart_beside_a_serving_one_does_not_stop_the_milter(
    rundir: Path,  # noqa: F811
) -> None:
    """The model file is damaged under a running milter, then one worker dies: its restart fails
    to load the model, but the other worker keeps serving with the model it loaded, and the
    supervisor keeps trying instead of ending the run."""
    import shutil

    from milterfilters.classifier.paths import DEFAULT_MODEL_DIR

    model = rundir / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    m = Milter(rundir, TWO_WORKERS + f'[classifier]\nmodel = "{model}"\n').start()
    try:
        wait_for(lambda: m.log.read_text().count("listening on") == 2, "both workers listening")
        first, second = started_pids(m)
        weights = model / "weights.npz"
        weights.write_bytes(weights.read_bytes()[:-100])
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: "restarting in" in m.log.read_text(), "the restart of the killed worker")
        wait_for(lambda: len(started_pids(m)) == 3, "a replacement started")
        wait_for(lambda: not alive(started_pids(m)[2]), "the replacement failing on the model")
        assert m.proc is not None and m.proc.poll() is None  # the supervisor runs on
        assert alive(second)
        assert send_concurrently(m, 6) == ["reject"] * 6  # GTUBE, judged by the serving worker
    finally:
        m.stop()


class _Exited:
    """A worker process that has ended with ``code`` (or runs on, with None)."""

    def __init__(self, code: int | None, pid: int = 0) -> None:
        self.code, self.pid = code, pid

    def poll(self) -> int | None:
        return self.code


def test_a_worker_failing_at_start_beside_a_serving_one_is_restarted_not_fatal() -> None:
    # the flake this came from: the model file changed while the second worker was still
    # loading it; the first was serving, yet the supervisor ended the whole run
    from milterfilters.config import config_from_dict
    from milterfilters.config.socketspec import parse_socket_spec
    from milterfilters.milter.server import STARTUP_FAILURE, Supervisor

    config = config_from_dict({"milter": {"workers": 2}})
    supervisor = Supervisor(None, config, parse_socket_spec("unix:/nonexistent/milter.sock"))
    serving, failed = supervisor.slots
    serving.proc, failed.proc = _Exited(None, 1), _Exited(STARTUP_FAILURE, 2)  # type: ignore[assignment]
    assert supervisor._check(failed, time.monotonic()) is None
    assert failed.restart_at is not None  # tried again after its backoff
    # with no worker serving and none ever started, a start-up failure ends the run
    lone = Supervisor(None, config, parse_socket_spec("unix:/nonexistent/milter.sock"))
    lone.slots[0].proc, lone.slots[1].proc = _Exited(STARTUP_FAILURE, 3), _Exited(STARTUP_FAILURE, 4)  # type: ignore[assignment]
    assert lone._check(lone.slots[0], time.monotonic()) == STARTUP_FAILURE
