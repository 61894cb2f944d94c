"""Issue 11's whole path, as an admin on Debian walks it: the wheel installed (not editable)
into a fresh venv, the milter run from it with the example unit's settings (socket inside
Postfix's queue directory, group postfix, mode 0660, metrics on), a **chrooted** Postfix
configured from examples/postfix/main.cf delivering a message that carries the embedded default
chain's Authentication-Results, ``/metrics`` counting it, a SIGHUP with a broken configuration
keeping the running one, and ``config --check`` catching a corrupt model."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import dkim
import pytest
import tomli_w

from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.config import render_config
from tests.support.defaultconfig import default_config
from tests.support.dnsserver import DnsTestServer
from tests.support.scrape import get, samples, value
from tests.support.wheelvenv import build_wheel, fresh_venv

from .conftest import AUTHSERV_ID, PARTNER_IP
from .deploy_examples import postfix_queue_socket, postfix_settings, unit_socket_directory
from .milter import E2EError
from .mta import MailStack, StackPool, make_message
from .runtime import free_port

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = build_wheel(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheelhouse"))
    root = tmp_path_factory.mktemp("venv") / "milterfilters"
    fresh_venv(wheel, root)
    root.parent.chmod(0o755)
    return root


def unit_config(partner_dns: DnsTestServer, metrics_port: int) -> str:
    """The embedded default (as ``milterfilters config`` prints it) with what a deployment
    sets: DNS on loopback (never the system resolver in a test), the socket's group and mode
    as the unit makes its directory, an authserv-id, and metrics on."""
    data = tomllib.loads(render_config(default_config([partner_dns.address], timeout=2.0)))
    made = unit_socket_directory()
    data["milter"].update(authserv_id=AUTHSERV_ID, socket_group=made.group, socket_mode="0660", workers=1)
    data["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    return tomli_w.dumps(data)


def metric(port: int, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` that ``/metrics`` serves now (0 when absent)."""
    return value(samples(get(port, "/metrics")[1]), name, **labels) or 0.0


def send_signed(stack: MailStack, key: PrivateKey, subject: str) -> str:
    """Send a partner's signed message through Postfix; our Authentication-Results, unfolded."""
    message = make_message(subject, sender="news@partner.example", to="user@test.example")
    signed = dkim.sign(
        message, b"s1", b"partner.example", key.dkimpy_key, signature_algorithm=b"ed25519-sha256"
    )
    sent = stack.send(subject, message=signed + message, mail_from="bounce@partner.example",
                      xclient={"ADDR": PARTNER_IP, "NAME": "mail.partner.example"})  # fmt: skip
    assert sent.transcript.accepted, sent.transcript.describe()
    ours = [
        r for r in sent.delivered().get_all("Authentication-Results", []) if r.strip().startswith(AUTHSERV_ID)
    ]
    assert len(ours) == 1, ours
    return " ".join(ours[0].split())


def test_the_wheel_behind_chrooted_postfix_from_the_examples(
    venv: Path,
    e2e_runtime_dir: Path,
    partner_dns: DnsTestServer,
    partner_key: PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may come from the checkout
    port = free_port()
    runtime = e2e_runtime_dir / "wheel"
    runtime.mkdir(mode=0o755, exist_ok=True)
    pool = StackPool(runtime, milter_command=[str(venv / "bin" / "milterfilters")])
    try:
        settings = postfix_settings()
        stack = pool.postfix(
            unit_config(partner_dns, port), main_cf=settings, chroot=True,
            queue_socket=postfix_queue_socket(settings), private=True,
        )  # fmt: skip
        # the milter is the wheel's, not the checkout's
        (worker,) = stack.milter.worker_pids()
        argv = Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")
        assert argv[0].startswith(str(venv).encode()) and b"-P" in argv, argv
        sock = stack.milter.socket_path
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660 and sock.group() == "postfix"

        # a message through chrooted smtpd carries the default chain's results
        results = send_signed(stack, partner_key, "from the wheel")
        assert "spf=pass smtp.mailfrom=bounce@partner.example" in results, results
        assert re.search(r"dkim=pass [^;]*header\.d=partner\.example", results), results
        assert re.search(r"dmarc=pass [^;]*header\.from=partner\.example", results), results
        assert metric(port, "milterfilters_messages_total", action="accept") >= 1
        assert metric(port, "milterfilters_findings_total", symbol="DMARC_PASS") >= 1

        # a SIGHUP with a broken configuration keeps the running one
        data = tomllib.loads(unit_config(partner_dns, port))
        data["scores"]["GTUBE"] = float("nan")  # would let GTUBE through
        broken = tomli_w.dumps(data)
        with pytest.raises(E2EError, match="refused"):
            stack.milter.reload(broken)
        assert stack.milter.worker_pids() == [worker]
        before = metric(port, "milterfilters_messages_total", action="accept")
        results = send_signed(stack, partner_key, "after the refused reload")
        assert "dmarc=pass" in results
        assert metric(port, "milterfilters_messages_total", action="accept") == before + 1
    finally:
        pool.close()


def test_config_check_of_the_wheel_catches_a_corrupt_model(venv: Path, tmp_path: Path) -> None:
    command = venv / "bin" / "milterfilters"
    code = "from milterfilters.classifier import paths; print(paths.DEFAULT_MODEL_DIR)"
    where = subprocess.run(
        [venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    installed = where.stdout.strip()
    assert installed.startswith(str(venv)), installed  # the model inside the installed package
    model = tmp_path / "model"
    shutil.copytree(installed, model)
    config = tmp_path / "milterfilters.toml"
    config.write_text(f'[dns]\nnameservers = ["127.0.0.1:9"]\n[classifier]\nmodel = "{model}"\n')
    good = subprocess.run([command, "config", "--check", "-c", config], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    weights = model / "weights.npz"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    bad = subprocess.run([command, "config", "--check", "-c", config], capture_output=True, text=True)
    assert bad.returncode == 2
    (line,) = [x for x in bad.stderr.splitlines() if "configuration error" in x]  # one line
    assert str(config) in line and "classifier.model" in line and "corrupt" in line, line
