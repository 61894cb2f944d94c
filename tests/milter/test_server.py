"""``milterfilters run`` as a real process: socket handling, SIGHUP reload, SIGTERM stop,
crash restart. The MTA side is played over the real libmilter socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from milterfilters.config import load_config
from milterfilters.config.socketspec import parse_socket_spec
from milterfilters.milter.server import Supervisor
from tests.support.milterclient import MilterClient, added_headers, final_action, one_message

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"


@pytest.fixture
def rundir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mf-run-") as d:
        yield Path(d)


class Milter:
    def __init__(self, rundir: Path, config: str = "") -> None:
        self.sock = rundir / "milter.sock"
        self.config = rundir / "milter.toml"
        self.config.write_text(config)
        self.log = rundir / "milter.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Milter:
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "milterfilters.cli",
                "run",
                "--config",
                str(self.config),
                "--socket",
                f"unix:{self.sock}",
            ],
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not self.sock.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "milter did not create its socket"
            time.sleep(0.05)
        # the socket is created mode 0600 and opened up just before "listening on" is logged
        self.wait_log("listening on", timeout=20)
        return self

    def wait_log(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.log.read_text()}"
            time.sleep(0.05)

    def stop(self) -> float:
        assert self.proc is not None
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()
        return time.monotonic() - start


@pytest.fixture
def milter(rundir: Path) -> Iterator[Milter]:
    m = Milter(rundir, '[milter]\nsocket_mode = "0666"\nworkers = 1\n')
    yield m.start()
    m.stop()


def test_serves_decisions_and_sets_socket_mode(milter: Milter) -> None:
    assert oct(milter.sock.stat().st_mode & 0o777) == "0o666"
    assert final_action(one_message(str(milter.sock), GTUBE)) == "reject"
    replies = one_message(str(milter.sock), "hello\r\n")
    assert final_action(replies) == "accept"
    assert added_headers(replies)["X-Milterfilters-Score"] == "0.00"
    milter.wait_log("action=reject")


def test_sighup_reloads_without_dropping_connections(milter: Milter) -> None:
    assert milter.proc is not None
    inflight = MilterClient(str(milter.sock))
    inflight.start()
    inflight.envelope("a@client.example", ["u@test.example"])
    milter.config.write_text('[milter]\nsocket_mode = "0666"\nworkers = 1\n[scores]\nGTUBE = 7.0\n')
    milter.proc.send_signal(signal.SIGHUP)
    milter.wait_log("reloaded configuration")
    # a new connection gets the new policy (GTUBE now only tags) ...
    assert final_action(one_message(str(milter.sock), GTUBE)) == "accept"
    # ... and the connection opened before the reload finishes, on the configuration it began with
    replies = inflight.message([("Subject", "before reload")], GTUBE)
    inflight.close()
    assert final_action(replies) == "reject"
    assert milter.proc.poll() is None


def test_sighup_with_broken_config_keeps_running(milter: Milter) -> None:
    assert milter.proc is not None
    milter.config.write_text("[milter\nbroken")
    milter.proc.send_signal(signal.SIGHUP)
    milter.wait_log("reload refused")
    assert milter.proc.poll() is None
    assert final_action(one_message(str(milter.sock), GTUBE)) == "reject"


def test_sigterm_stops_within_seconds_and_removes_socket(rundir: Path) -> None:
    m = Milter(rundir).start()
    one_message(str(m.sock), "hi\r\n")
    elapsed = m.stop()
    assert m.proc is not None and m.proc.returncode == 0
    assert elapsed < 10
    assert not m.sock.exists()


def test_stale_socket_is_replaced_and_live_one_refused(rundir: Path) -> None:
    sock_path = rundir / "milter.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()  # the file stays behind, nobody listens: like after a crash
    m = Milter(rundir)
    m.start()
    try:
        m.wait_log("listening on")
        assert final_action(one_message(str(sock_path), GTUBE)) == "reject"
        second = subprocess.run(
            [sys.executable, "-m", "milterfilters.cli", "run", "--socket", f"unix:{sock_path}"],
            capture_output=True,
            timeout=30,
        )
        assert second.returncode == 2
        assert b"another milter is listening" in second.stderr
    finally:
        m.stop()


def test_crashed_worker_is_restarted(milter: Milter) -> None:
    milter.wait_log("started worker pid")
    worker = int(milter.log.read_text().split("started worker pid ")[1].split()[0])
    os.kill(worker, signal.SIGKILL)
    milter.wait_log("restarting in")
    deadline = time.monotonic() + 20
    while milter.log.read_text().count("listening on") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert final_action(one_message(str(milter.sock), GTUBE)) == "reject"


def test_bad_socket_spec_is_a_config_error(rundir: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "run", "--socket", "tcp:nowhere"],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 2 and b"milter.socket" in r.stderr


def test_tcp_listener_has_nodelay_inherited_by_connections() -> None:
    from milterfilters.milter.server import open_listener

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    listener = open_listener(parse_socket_spec(f"inet:127.0.0.1:{port}"), load_config(None))
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert not listener.getblocking()  # shared by the workers: losers of a race get EAGAIN
        client = socket.create_connection(("127.0.0.1", port))
        listener.setblocking(True)
        accepted, _ = listener.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        accepted.close()
        client.close()
    finally:
        listener.close()


def test_a_socket_in_use_is_refused_with_its_reason(rundir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "milterfilters.cli", "run", "--socket", f"inet:{port}@127.0.0.1"],
            capture_output=True,
            timeout=30,
        )
    assert r.returncode == 2
    assert b"Address already in use" in r.stderr and b"Traceback" not in r.stderr
    missing = rundir / "no" / "such" / "m.sock"
    r = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "run", "--socket", f"unix:{missing}"],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 2 and f"directory {missing.parent} does not exist".encode() in r.stderr


def test_sighup_with_a_damaged_model_keeps_the_loaded_one(rundir: Path) -> None:
    import shutil

    from milterfilters.classifier.paths import DEFAULT_MODEL_DIR

    model = rundir / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    m = Milter(rundir, f'[milter]\nsocket_mode = "0666"\n[classifier]\nmodel = "{model}"\n').start()
    try:
        m.wait_log("listening on")
        assert m.proc is not None
        weights = model / "weights.npz"
        weights.write_bytes(weights.read_bytes()[:-100])  # a truncated copy, as a failed rsync leaves
        m.proc.send_signal(signal.SIGHUP)
        m.wait_log("reload refused, keeping the running configuration")  # the supervisor's check
        assert m.proc.poll() is None
        assert final_action(one_message(str(m.sock), GTUBE)) == "reject"
    finally:
        m.stop()


def test_missing_model_stops_start_up_with_one_clear_line(rundir: Path) -> None:
    config = rundir / "c.toml"
    config.write_text(f'[classifier]\nmodel = "{rundir / "no-such-model"}"\n')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "milterfilters.cli",
            "run",
            "--config",
            str(config),
            "--socket",
            f"unix:{rundir / 's.sock'}",
        ],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = [line for line in r.stderr.decode().splitlines() if line.strip()]
    assert any("no-such-model" in line and "classifier" in line for line in lines), r.stderr
    assert b"Traceback" not in r.stderr


class _ShortLivedWorkers(Supervisor):
    """The real supervision loop around stand-in workers that exit after ``lifetimes[i]``
    seconds; stops itself after the last one and records when each was started."""

    initial_backoff = 0.2
    stable_uptime = 0.4

    def __init__(self, rundir: Path, lifetimes: list[float]) -> None:
        config = rundir / "one-worker.toml"
        config.write_text("[milter]\nworkers = 1\n")
        super().__init__(None, load_config(str(config)), parse_socket_spec(f"unix:{rundir / 'absent.sock'}"))
        self.lifetimes = lifetimes
        self.starts: list[float] = []

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts.append(time.monotonic())
        if len(self.starts) == len(self.lifetimes):
            self.stopping = True
        lifetime = self.lifetimes[len(self.starts) - 1]
        return subprocess.Popen(["sleep", str(lifetime)])


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    """Supervisor.serve installs handlers for SIGTERM, SIGINT and SIGHUP: put pytest's back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _restart_delays(sup: _ShortLivedWorkers) -> list[float]:
    """Seconds between one worker's exit and the next one's start."""
    return [
        b - a - lifetime for a, b, lifetime in zip(sup.starts, sup.starts[1:], sup.lifetimes, strict=False)
    ]


def test_restart_backoff_starts_over_after_a_worker_that_ran_stably(
    rundir: Path, own_signal_handlers: None
) -> None:
    # workers crashing after a stable run (say a poison message now and then) are each
    # restarted after the initial backoff; before, the backoff kept doubling up to 30 s
    sup = _ShortLivedWorkers(rundir, [0.6] * 4)
    assert sup.serve() == 0
    delays = _restart_delays(sup)
    assert len(delays) == 3 and all(d < 0.2 + 0.35 for d in delays), delays


def test_restart_backoff_doubles_in_a_crash_loop(rundir: Path, own_signal_handlers: None) -> None:
    sup = _ShortLivedWorkers(rundir, [0.0] * 4)
    assert sup.serve() == 0
    delays = _restart_delays(sup)
    assert delays[1] > delays[0] + 0.1 and delays[2] > delays[1] + 0.3, delays  # 0.2, 0.4, 0.8 s
