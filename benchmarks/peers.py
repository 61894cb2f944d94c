"""Side by side with the peers: SpamAssassin (spamd, local rules + Bayes) and rspamd (Bayes in
Redis), trained on the same train split, scoring the same test split as our classifier.

    .venv/bin/python benchmarks/peers.py [--workdir DIR] [--skip-install]

Installs the Debian packages it needs (spamassassin spamc spamd rspamd redis-server
dnsmasq-base), starts everything on loopback (ports below, chosen away from the packages'
defaults), trains, scores, prints one table, and stops exactly the processes it started.
Local tests only: no DNS blocklists; rspamd's DNS goes to a dnsmasq on loopback that refuses
every query, so nothing leaves the machine. Takes about five minutes (sa-learn and spamd are slow).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import Mail, load_split

from milterfilters.classifier.evaluation import summarize
from milterfilters.classifier.model import load_model
from milterfilters.classifier.paths import DEFAULT_MODEL_DIR

SPAMD_PORT = 27830
REDIS_PORT = 26379
DNS_PORT = 25353  # dnsmasq without upstreams: refuses every query at once (no waiting on timeouts)
RSPAMD_PORTS = {"normal": 21333, "controller": 21334, "proxy": 21332, "fuzzy": 21335}
PACKAGES = ["spamassassin", "spamc", "spamd", "rspamd", "redis-server", "dnsmasq-base"]
SA_SITE_CONFIG = """\
use_bayes 1
bayes_auto_learn 0
bayes_path {work}/sa/bayes/bayes
bayes_file_mode 0777
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
dns_available no
"""
RSPAMD_LOCAL = {
    "options.inc": 'dns {{ nameserver = ["{dns}"]; timeout = 0.5s; retransmits = 1; }}\n'
    'local_addrs = "127.0.0.0/8";\nhs_cache_dir = "{work}/rspamd/db";\n',
    "logging.inc": 'type = "file"; filename = "{work}/rspamd/log/rspamd.log"; level = "notice";\n',
    "worker-normal.inc": 'bind_socket = "127.0.0.1:{normal}"; count = 1;\n',
    "worker-controller.inc": 'bind_socket = "127.0.0.1:{controller}"; count = 1; secure_ip = "127.0.0.1";\n',
    "worker-proxy.inc": 'bind_socket = "127.0.0.1:{proxy}"; count = 1;\n',
    "worker-fuzzy.inc": 'bind_socket = "127.0.0.1:{fuzzy}"; count = 0;\n',
    "redis.conf": 'servers = "127.0.0.1:{redis}";\n',
    "classifier-bayes.conf": 'backend = "redis"; servers = "127.0.0.1:{redis}";\n'
    "min_learns = 5; autolearn = false;\n",
}
RSPAMD_DISABLED = (
    "rbl surbl fuzzy_check neural ratelimit greylist replies url_reputation history_redis "
    "dmarc_report reputation asn emails phishing multimap"
).split()


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait_port(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_unix_socket(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
                return
            except OSError:
                time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {path} after {timeout:.0f}s")


def free_port(port: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            raise RuntimeError(f"port {port} is already in use: stop what listens there first")
    except OSError:
        pass


def write_dir(root: Path, mails: list[Mail]) -> None:
    for i, mail in enumerate(mails):
        folder = root / mail.label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}").write_bytes(mail.raw)


class Peers:
    """The peer daemons this script starts, stopped by their own pid files."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pidfiles: list[Path] = []

    def run(self, *cmd: str) -> None:
        """Run a command (a daemon forks away); its output goes to a log, not to a pipe that
        a daemon would keep open and this script would wait on forever."""
        with (self.work / "commands.log").open("ab") as out:
            subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def start_spamd(self) -> None:
        sa = self.work / "sa"
        for sub in ("site", "bayes", "home"):
            (sa / sub).mkdir(parents=True, exist_ok=True)
        for pre in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, sa / "site")
        if Path("/etc/spamassassin/65_debian.cf").exists():
            shutil.copy("/etc/spamassassin/65_debian.cf", sa / "site")
        (sa / "site" / "local.cf").write_text(SA_SITE_CONFIG.format(work=self.work))
        shutil.chown(sa / "bayes", "debian-spamd")
        shutil.chown(sa / "home", "debian-spamd")
        os.chmod(sa / "bayes", 0o777)
        free_port(SPAMD_PORT)
        pidfile = sa / "spamd.pid"
        self.run(
            "spamd", "-d", "-L", "-x", "-i", "127.0.0.1", "-p", str(SPAMD_PORT), "-A", "127.0.0.1",
            "-u", "debian-spamd", "-g", "debian-spamd", f"--siteconfigpath={sa / 'site'}",
            f"--helper-home-dir={sa / 'home'}", "-m", "2", "--min-children=2",
            "-r", str(pidfile), "-s", str(sa / "spamd.log"),
        )  # fmt: skip
        self.pidfiles.append(pidfile)
        wait_port(SPAMD_PORT)

    def train_spamd(self, corpus: Path) -> None:
        site = f"--siteconfigpath={self.work / 'sa' / 'site'}"
        self.run("sa-learn", site, "--spam", str(corpus / "spam"))
        self.run("sa-learn", site, "--ham", str(corpus / "ham"))
        for f in (self.work / "sa" / "bayes").iterdir():
            os.chmod(f, 0o666)

    @property
    def rspamd_milter_socket(self) -> Path:
        """Where rspamd's proxy worker listens as a milter (``start_rspamd(milter=True)``)."""
        return self.work / "rspamd" / "run" / "milter.sock"

    @property
    def rspamd_pid(self) -> int:
        """The rspamd main process (its workers are its children)."""
        return int((self.work / "rspamd" / "run" / "rspamd.pid").read_text().split()[0])

    def start_rspamd(self, *, nameserver: str | None = None, milter: bool = False) -> None:
        """Redis and rspamd on loopback. rspamd's DNS goes to ``nameserver`` (``host:port``),
        else to a dnsmasq of ours that refuses every query; ``milter`` makes the proxy worker
        a milter on the unix socket :attr:`rspamd_milter_socket`."""
        base = self.work / "rspamd"
        local = base / "local" / "local.d"
        local.mkdir(parents=True, exist_ok=True)
        dns = nameserver or f"127.0.0.1:{DNS_PORT}"
        values = {"work": self.work, "redis": REDIS_PORT, "dns": dns, **RSPAMD_PORTS}
        for name, text in RSPAMD_LOCAL.items():
            (local / name).write_text(text.format(**values))
        if milter:
            (local / "worker-proxy.inc").write_text(
                f'bind_socket = "{self.rspamd_milter_socket} mode=0666"; count = 1; milter = yes;\n'
                'upstream "local" { default = yes; self_scan = yes; }\n'
            )
        for module in RSPAMD_DISABLED:
            (local / f"{module}.conf").write_text("enabled = false;\n")
        for sub in ("db", "run", "log"):
            (base / sub).mkdir(exist_ok=True)
            shutil.chown(base / sub, "_rspamd", "_rspamd")
        redis_dir = self.work / "redis"
        redis_dir.mkdir(exist_ok=True)
        for port in (REDIS_PORT, *RSPAMD_PORTS.values()):
            free_port(port)
        if nameserver is None:
            dns_pid = self.work / "dnsmasq.pid"
            self.run(
                "dnsmasq", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
                f"--port={DNS_PORT}", f"--pid-file={dns_pid}", "--user=root",
            )  # fmt: skip
            self.pidfiles.append(dns_pid)
        self.run(
            "redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--daemonize", "yes",
            "--save", "", "--appendonly", "no", "--dir", str(redis_dir),
            "--pidfile", str(redis_dir / "redis.pid"), "--logfile", str(redis_dir / "redis.log"),
        )  # fmt: skip
        self.pidfiles.append(redis_dir / "redis.pid")
        wait_port(REDIS_PORT)
        rv = [f"--var=LOCAL_CONFDIR={base / 'local'}", f"--var=DBDIR={base / 'db'}"]
        rv += [f"--var=RUNDIR={base / 'run'}", f"--var=LOGDIR={base / 'log'}"]
        pidfile = base / "run" / "rspamd.pid"
        self.run(
            "rspamd",
            "-c",
            "/etc/rspamd/rspamd.conf",
            *rv,
            "-u",
            "_rspamd",
            "-g",
            "_rspamd",
            "-p",
            str(pidfile),
        )
        self.pidfiles.append(pidfile)
        wait_port(RSPAMD_PORTS["normal"], timeout=180)
        wait_port(RSPAMD_PORTS["controller"], timeout=60)
        if milter:
            wait_unix_socket(self.rspamd_milter_socket, timeout=60)

    def train_rspamd(self, mails: list[Mail]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", RSPAMD_PORTS["controller"], timeout=60)
        for mail in mails:
            conn.request("POST", f"/learn{mail.label}", body=mail.raw)
            response = conn.getresponse()
            response.read()

    def stop(self) -> None:
        for pidfile in reversed(self.pidfiles):
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                log(f"stopped {pidfile.stem} (pid {pid})")
            except ProcessLookupError:
                pass
        time.sleep(2)


def spamd_score(raw: bytes) -> float:
    body = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with socket.create_connection(("127.0.0.1", SPAMD_PORT), timeout=120) as s:
        s.sendall(b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(body) + body)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.split(b"\r\n"):
        if line.startswith(b"Spam:"):
            return float(line.split(b";")[1].split(b"/")[0])
    raise RuntimeError(f"unexpected spamd answer {data[:200]!r}")


def rspamd_scorer() -> object:
    conn = http.client.HTTPConnection("127.0.0.1", RSPAMD_PORTS["normal"], timeout=60)

    def score(raw: bytes) -> float:
        conn.request("POST", "/checkv2", body=raw, headers={"IP": "203.0.113.9"})
        return float(json.loads(conn.getresponse().read())["score"])

    return score


def timed(scores_of: object, mails: list[Mail], workers: int = 1) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            scores = list(pool.map(scores_of, (m.raw for m in mails)))  # type: ignore[arg-type]
    else:
        scores = [scores_of(m.raw) for m in mails]  # type: ignore[operator]
    return np.array(scores), 1000 * (time.perf_counter() - started) * workers / len(mails)


def row(name: str, labels: np.ndarray, scores: np.ndarray, threshold: float, ms: float) -> str:
    r = summarize(labels, scores, threshold)
    log(f"{name}: AUC {r.auc:.5f}, recall at <=0.1% FP {100 * r.recall_at_low_fp:.1f}%")
    return (
        f"| {name} | {r.false_positives} | {r.false_negatives} | {r.auc:.5f} | "
        f"{r.one_minus_roca_percent:.4f}% | {100 * r.recall_at_low_fp:.1f}% | {ms:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where the peers keep their state (default: a new temp dir)")
    parser.add_argument("--skip-install", action="store_true", help="do not run apt-get")
    args = parser.parse_args()
    if not args.skip_install:
        log("installing " + " ".join(PACKAGES))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], check=True, env=env
        )
    work = Path(args.workdir or tempfile.mkdtemp(prefix="milterfilters-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    train, test = load_split("train"), load_split("test")
    labels = np.array([m.is_spam for m in test], dtype=int)
    log(f"train {len(train)}, test {len(test)} messages; state in {work}")

    model = load_model(DEFAULT_MODEL_DIR)
    ours, ours_ms = timed(model.score_raw, test)
    rows = [row("milterfilters classifier (p >= 0.5)", labels, ours, 0.5, ours_ms)]

    peers = Peers(work)
    try:
        write_dir(work / "train", train)
        log("starting spamd")
        peers.start_spamd()
        log("sa-learn on the train split (slow)")
        peers.train_spamd(work / "train")
        log("scoring with spamd")
        sa, sa_ms = timed(spamd_score, test, workers=2)
        rows.append(row("SpamAssassin 4 rules + Bayes (score >= 5)", labels, sa, 5.0, sa_ms))
        log("starting redis and rspamd (cold start compiles hyperscan: ~20 s)")
        peers.start_rspamd()
        log("training rspamd Bayes")
        peers.train_rspamd(train)
        log("scoring with rspamd")
        rs, rs_ms = timed(rspamd_scorer(), test)
        rows.append(row("rspamd 3 Bayes + rules (score >= 6, add header)", labels, rs, 6.0, rs_ms))
    finally:
        peers.stop()
    print(f"test split: {int((labels == 0).sum())} ham, {int(labels.sum())} spam; trained on {len(train)}")
    print("| filter | FP | FN | AUC | 1-ROCA | recall at <=0.1% FP | ms/message |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("(spamd ms/message: wall time x 2 workers / messages; ours: in process, parse+features+predict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
