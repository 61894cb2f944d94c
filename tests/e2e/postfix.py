"""A private Postfix on loopback: its own config, queue and data directories; never /etc/postfix."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from .mailbox import Maildir
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
    wait_pid_gone,
    wait_until,
    write_sasldb,
)


def _postfix_main_cf(
    base: Path, milter: str | None, *, relay_all: bool, extra: Mapping[str, str]
) -> dict[str, str]:
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(base / "spool"),
        "data_directory": str(base / "data"),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": MTA_HOSTNAME,
        "mydomain": LOCAL_DOMAIN,
        "myorigin": "$mydomain",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "mydestination": "",
        "local_recipient_maps": "",
        # final delivery: virtual(8) puts every recipient of every domain into one Maildir
        "virtual_mailbox_domains": LOCAL_DOMAIN,
        "virtual_mailbox_base": str(base / "mail"),
        "virtual_mailbox_maps": "static:inbox/",
        "virtual_uid_maps": "static:65534",
        "virtual_gid_maps": "static:65534",
        "default_transport": "virtual",
        "relay_transport": "virtual",
        # no DNS, nothing leaves the box
        "disable_dns_lookups": "yes",
        "smtp_host_lookup": "native",
        "smtpd_peername_lookup": "no",
        "maillog_file_prefixes": "/tmp",
        "maillog_file": str(base / "maillog"),
        "biff": "no",
        "smtputf8_enable": "no",
        "smtpd_banner": "$myhostname ESMTP test",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
        # Cyrus SASL with sasldb; also what makes XCLIENT LOGIN= set {auth_authen}
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "cyrus",
        "smtpd_sasl_path": "smtpd",
        "smtpd_milters": milter or "",
        "non_smtpd_milters": "",
        "milter_default_action": "tempfail",
        "milter_protocol": "6",
        "milter_connect_timeout": "5s",
        "milter_command_timeout": "10s",
        "milter_content_timeout": "30s",
        "milter_macro_daemon_name": "MTA-IN",
        "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} "
        "{client_port} {client_ptr} {client_connections}",
        "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
        "{mail_mailer}",
        "milter_end_of_data_macros": "i {auth_authen} {auth_type} {client_addr}",
        "queue_run_delay": "10s",
        "minimal_backoff_time": "10s",
        "maximal_backoff_time": "20s",
    }
    if relay_all:
        # every domain is a relay domain, so Postfix never refuses relaying: the milter decides
        settings["relay_domains"] = "static:all"
        settings["smtpd_relay_restrictions"] = "reject_unauth_destination"
    settings.update(extra)
    return settings


_POSTFIX_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


#: Debian's stock master.cf: its fifth column says which services run chrooted (most do)
DEBIAN_MASTER_CF = Path("/usr/share/postfix/master.cf.dist")
#: Debian's helper that populates the chroot (etc/services, resolv.conf, libraries, ...) before
#: every start of a Postfix instance
DEBIAN_CONFIGURE_INSTANCE = Path("/usr/lib/postfix/configure-instance.sh")


def debian_chroot_column(master_cf: Path = DEBIAN_MASTER_CF) -> dict[tuple[str, str], str]:
    """``(service, type) -> chroot`` (``y``/``n``/``-``) from Debian's stock master.cf."""
    column = {}
    for line in master_cf.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 8 and not line[0].isspace() and not line.startswith("#"):
            column[(fields[0], fields[1])] = fields[4]
    return column


def chrooted_master_cf(master_cf: str, chroot: Mapping[tuple[str, str], str]) -> str:
    """``master_cf`` with each service's chroot column set as in ``chroot`` (the SMTP listener,
    whatever its address, as Debian's ``smtp inet``)."""
    lines = []
    for line in master_cf.splitlines():
        fields = line.split()
        service = "smtp" if fields[1] == "inet" else fields[0]
        fields[4] = chroot.get((service, fields[1]), fields[4])
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


class PostfixInstance:
    """A private Postfix on 127.0.0.1:``port`` whose smtpd passes mail through ``milter``.

    ``relay_all`` makes every domain a relay domain (``relay_domains = static:all``) so that
    relaying is the milter's decision; ``main_cf`` overrides or adds main.cf settings.
    Accepted mail of every recipient lands in :attr:`maildir`.

    ``chroot=True`` runs the services chrooted into the queue directory as Debian's stock
    master.cf does (smtpd, cleanup, ...), the chroot populated by Debian's own
    configure-instance.sh. SASL's sasldb lies outside that chroot: AUTH fails there.
    """

    def __init__(
        self,
        base: Path,
        *,
        milter: str | None,
        port: int | None = None,
        relay_all: bool = False,
        main_cf: Mapping[str, str] | None = None,
        chroot: bool = False,
    ) -> None:
        self.base = base
        self.chroot = chroot
        self.port = port or free_port()
        self.config_dir = base / "etc"
        self.log_path = base / "maillog"
        self.maildir = Maildir(base / "mail" / "inbox")
        self.settings = _postfix_main_cf(base, milter, relay_all=relay_all, extra=main_cf or {})
        self._master_pid: int | None = None

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_command(["postfix", "-c", str(self.config_dir), *args])

    def _write_config(self) -> None:
        for sub in ("etc/sasl", "spool", "data", "mail"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        shutil.chown(self.base / "data", "postfix", "postfix")
        shutil.chown(self.base / "mail", "nobody", "nogroup")
        main_cf = "".join(f"{key} = {value}\n" for key, value in self.settings.items())
        (self.config_dir / "main.cf").write_text(main_cf)
        master_cf = _POSTFIX_MASTER_CF.format(listen=f"{LOOPBACK}:{self.port}")
        if self.chroot:
            master_cf = chrooted_master_cf(master_cf, debian_chroot_column())
        (self.config_dir / "master.cf").write_text(master_cf)
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf (cyrus_sasl_config_path is ignored)
        sasldb = self.config_dir / "sasl" / "sasldb2"
        (self.config_dir / "sasl" / "smtpd.conf").write_text(cyrus_sasldb_conf(sasldb))
        write_sasldb(sasldb, owner="root", group="postfix")
        _age_config_files(self.config_dir)
        if self.chroot:
            self._populate_chroot()

    def _populate_chroot(self) -> None:
        """What Debian does before each start of a chrooted Postfix: copy etc/services,
        resolv.conf, hosts, nsswitch.conf, the NSS and resolver libraries into the queue directory."""
        env = {**os.environ, "MAIL_CONFIG": str(self.config_dir)}
        result = subprocess.run(
            ["sh", str(DEBIAN_CONFIGURE_INSTANCE), "-"], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise E2EError(f"{DEBIAN_CONFIGURE_INSTANCE} failed: {result.stdout}{result.stderr}")

    def start(self, timeout: float = 15.0) -> None:
        """Write the configuration, start the master and wait for the SMTP port."""
        self._write_config()
        started = self._postfix("start")  # also creates the queue directories
        if started.returncode != 0:
            raise E2EError(f"postfix start failed: {started.stderr}\n{tail(self.log_path)}")
        pid_file = self.base / "spool" / "pid" / "master.pid"
        wait_until(pid_file.exists, timeout, "postfix master.pid")
        self._master_pid = int(pid_file.read_text().split()[0])
        try:
            wait_until(lambda: tcp_listening(self.port), timeout, f"postfix on port {self.port}")
        except TimeoutError:
            self.stop()
            raise E2EError(f"postfix did not listen:\n{tail(self.log_path)}") from None

    def stop(self, timeout: float = 15.0) -> None:
        """``postfix stop``, then wait for the master PID; SIGKILL it if it lingers."""
        pid = self._master_pid
        if pid is None:
            return
        self._postfix("stop")
        if not wait_pid_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            wait_pid_gone(pid, 5)
        self._master_pid = None

    def log_text(self) -> str:
        """Postfix's log (postlogd writes it; no syslog needed)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _age_config_files(config_dir: Path) -> None:
    """Backdate main.cf and master.cf: Postfix waits, polling, until a config file it reads is
    more than a second old (so as not to read one being edited) -- seconds per start otherwise."""
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(config_dir / name, (past, past))
