"""Sendmail on loopback, run from its unpacked Debian packages in a private mount namespace."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.syslogreceiver import SyslogReceiver

from .mailbox import SendmailQueue
from .runtime import (
    LOCAL_DOMAIN,
    LOOPBACK,
    MTA_HOSTNAME,
    E2EError,
    cyrus_sasldb_conf,
    free_port,
    run_command,
    tail,
    tcp_listening,
    wait_until,
    write_sasldb,
)

INSTALL_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-test-deps.sh"
#: where scripts/install-test-deps.sh unpacks Sendmail (override with MILTERFILTERS_SENDMAIL_ROOT)
DEFAULT_SENDMAIL_ROOT = Path("/var/cache/milterfilters-test/sendmail/root")


def sendmail_root() -> Path:
    """The folder Sendmail's Debian packages are unpacked into (see scripts/install-test-deps.sh)."""
    return Path(os.environ.get("MILTERFILTERS_SENDMAIL_ROOT", DEFAULT_SENDMAIL_ROOT))


def ensure_sendmail_unpacked(root: Path | None = None) -> Path:
    """Return the unpacked Sendmail, unpacking it with the install script's ``--sendmail`` step
    if it is missing; raise E2EError (never skip) when that is impossible."""
    root = root or sendmail_root()
    if not (root / "usr/libexec/sendmail/sendmail").exists():
        result = run_command(["bash", str(INSTALL_SCRIPT), "--sendmail", str(root)])
        if result.returncode != 0 or not (root / "usr/libexec/sendmail/sendmail").exists():
            raise E2EError(
                f"Sendmail is not unpacked at {root} and {INSTALL_SCRIPT} --sendmail failed "
                f"(run it as root):\n{result.stdout}{result.stderr}"
            )
    return root


_SENDMAIL_CONNECT_MACROS = (
    "j _ {daemon_name} {if_name} {if_addr} {client_addr} {client_name} {client_port}".split()
)
_SENDMAIL_ENVFROM_MACROS = (
    "i {auth_type} {auth_authen} {auth_ssf} {auth_author} {mail_mailer} {mail_host} {mail_addr}".split()
)
_SENDMAIL_MILTER_LINES = """\
define(`confMILTER_MACROS_CONNECT', `{connect_macros}')dnl
define(`confMILTER_MACROS_ENVFROM', `{envfrom_macros}')dnl
define(`confMILTER_MACROS_EOM', `i, {{msg_id}}')dnl
INPUT_MAIL_FILTER(`milterfilters', `S={milter}, F=T, T=C:5s;S:10s;R:10s;E:30s')dnl"""
_SENDMAIL_MC = """\
divert(-1)
include(`{cf}/m4/cf.m4')
divert(0)dnl
VERSIONID(`milterfilters e2e')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{hostname}')dnl
define(`QUEUE_DIR', `{base}/mqueue')dnl
define(`ALIAS_FILE', `')dnl
define(`STATUS_FILE', `{base}/statistics')dnl
define(`confPID_FILE', `{base}/sendmail.pid')dnl
define(`confSERVICE_SWITCH_FILE', `{base}/service.switch')dnl
define(`confHOSTS_FILE', `{base}/hosts')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDONT_BLAME_SENDMAIL', `GroupWritableDirPathSafe,ForwardFileInUnsafeDirPath,TrustStickyBit')dnl
define(`confDELIVERY_MODE', `queueonly')dnl
define(`confLOG_LEVEL', `9')dnl
define(`confMILTER_LOG_LEVEL', `12')dnl
define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl
TRUST_AUTH_MECH(`PLAIN LOGIN')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`accept_unqualified_senders')dnl
FEATURE(`promiscuous_relay')dnl
DAEMON_OPTIONS(`Port={port}, Addr={listen}, Name=MTA-SM')dnl
{milter_lines}
LOCAL_DOMAIN(`{domain}')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""


class SendmailInstance:
    """Sendmail from its unpacked Debian packages on 127.0.0.1:``port``, queue-only, with the
    milter at ``milter`` (libmilter notation) as its only INPUT_MAIL_FILTER (F=T: tempfail when
    the milter is unavailable). Accepted mail stays in :attr:`queue`.

    It runs in a private mount namespace (``unshare -m``) with its own /etc/hosts (listing a
    dotted name, so it does not sleep 60 s on an unqualified host name), nsswitch.conf,
    resolv.conf and Cyrus SASL config (sasldb with :data:`SASL_USERS`), and a private /dev
    whose ``log`` is a :class:`SyslogReceiver` writing to :attr:`log_path` (Sendmail logs
    only to syslog).

    ``milter_mc`` replaces the milter lines of the .mc (INPUT_MAIL_FILTER and the macro lists;
    ``milter`` is then unused), and ``run_dir`` is a folder Sendmail sees as /run, so that a
    socket path from an example (``S=local:/run/…``) is used as written.
    """

    def __init__(
        self,
        base: Path,
        *,
        milter: str,
        root: Path | None = None,
        port: int | None = None,
        milter_mc: Sequence[str] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.base = base
        self.milter_mc = list(milter_mc) if milter_mc else None
        self.run_dir = run_dir
        self.root = root or sendmail_root()
        self.port = port or free_port()
        self.milter = milter
        self.queue = SendmailQueue(base / "mqueue")
        self.log_path = base / "maillog"
        self.output_path = base / "sendmail.out"
        self._syslog = SyslogReceiver(base / "log.sock", self.log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def binary(self) -> Path:
        return self.root / "usr/libexec/sendmail/sendmail"

    def _write_config(self) -> Path:
        base = self.base
        (base / "mqueue").mkdir(parents=True, exist_ok=True)
        (base / "sasl").mkdir(exist_ok=True)
        base.chmod(0o755)
        (base / "mqueue").chmod(0o700)
        mc = _SENDMAIL_MC.format(
            cf=self.root / "usr/share/sendmail/cf",
            hostname=MTA_HOSTNAME,
            base=base,
            port=self.port,
            listen=LOOPBACK,
            domain=LOCAL_DOMAIN,
            milter_lines="\n".join(self.milter_mc) if self.milter_mc else self._default_milter_lines(),
        )
        (base / "sendmail.mc").write_text(mc)
        cf = base / "sendmail.cf"
        m4 = run_command(["m4", str(base / "sendmail.mc")])
        if m4.returncode != 0:
            raise E2EError(f"m4 failed on sendmail.mc: {m4.stderr}")
        cf.write_text(m4.stdout)
        (base / "statistics").touch()
        (base / "service.switch").write_text("hosts files\naliases files\n")
        short = socket.gethostname().split(".")[0]
        hosts = f"127.0.0.1 localhost {MTA_HOSTNAME} {short}\n::1 localhost {MTA_HOSTNAME} {short}\n"
        (base / "hosts").write_text(hosts)
        (base / "nsswitch.conf").write_text("hosts: files\npasswd: files\ngroup: files\n")
        (base / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        sasldb = base / "sasl" / "sasldb2"
        (base / "sasl" / "Sendmail.conf").write_text(cyrus_sasldb_conf(sasldb))
        write_sasldb(sasldb, owner="root")
        return cf

    def start(self, timeout: float = 20.0) -> None:
        """Configure, start in the foreground (``-bD``) and wait for the SMTP port."""
        if not self.binary.exists():
            raise E2EError(f"no Sendmail binary at {self.binary}: run scripts/install-test-deps.sh")
        cf = self._write_config()
        self._syslog.start()
        daemon = shlex.join([str(self.binary), "-C", str(cf), "-bD", "-q1h", "-L", "sm-e2e"])
        with self.output_path.open("ab") as output:
            self._proc = subprocess.Popen(
                ["unshare", "-m", "sh", "-c", f"{self._namespace_setup()} && exec {daemon}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise E2EError(f"sendmail exited with {self._proc.returncode}:\n{self._diagnostics()}")
            return tcp_listening(self.port)

        try:
            wait_until(ready, timeout, f"sendmail on port {self.port}")
        except TimeoutError:
            self.stop()
            raise E2EError(f"sendmail did not listen in {timeout:g} s:\n{self._diagnostics()}") from None

    def _default_milter_lines(self) -> str:
        return _SENDMAIL_MILTER_LINES.format(
            milter=self.milter,
            connect_macros=", ".join(_SENDMAIL_CONNECT_MACROS),
            envfrom_macros=", ".join(_SENDMAIL_ENVFROM_MACROS),
        )

    def _namespace_setup(self) -> str:
        """Shell commands run inside the new mount namespace before Sendmail starts."""
        base = self.base
        host_dev = base / "host-dev"
        host_dev.mkdir(exist_ok=True)
        q = shlex.quote
        commands = [
            f"mount --bind {q(str(base / name))} {q(target)}"
            for name, target in (
                ("hosts", "/etc/hosts"),
                ("nsswitch.conf", "/etc/nsswitch.conf"),
                ("resolv.conf", "/etc/resolv.conf"),
                ("sasl", "/usr/lib/sasl2"),  # where Cyrus looks for Sendmail.conf
            )
        ]
        # a private /dev: the host's device nodes Sendmail uses, and our syslog socket as log
        commands.append(f"mount --rbind /dev {q(str(host_dev))}")
        commands.append("mount -t tmpfs -o mode=755 e2e-dev /dev")
        for node in ("null", "zero", "random", "urandom"):
            commands.append(f"touch /dev/{node} && mount --bind {q(str(host_dev / node))} /dev/{node}")
        commands.append(f"ln -s {q(str(self._syslog.socket_path))} /dev/log")
        if self.run_dir is not None:
            commands.append(f"mount --bind {q(str(self.run_dir))} /run")
        return " && ".join(commands)

    def _diagnostics(self) -> str:
        return f"{tail(self.output_path)}\n--- syslog:\n{tail(self.log_path)}"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the daemon (it stops its children) and wait; SIGKILL if it hangs."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None
        self._syslog.stop()

    def log_text(self) -> str:
        """What Sendmail logged to syslog."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
