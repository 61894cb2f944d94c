"""The library entry points: build a chain from a configuration, and judge a message
without any MTA (what ``milterfilters check`` does)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from milterfilters.chain import Chain, ChainLink
from milterfilters.config import Config, FilterSpec, load_config
from milterfilters.context import Auth, Connection, Message, strip_angle_brackets
from milterfilters.filters.base import Filter
from milterfilters.message import parse_message
from milterfilters.policy import Policy
from milterfilters.schema import ConfigError
from milterfilters.services import Services
from milterfilters.stages import Stage
from milterfilters.verdict import Action, Decision, SmtpReply


def default_services(config: Config) -> Services:
    """Services for ``config``: metrics, clock and the shared DNS resolver."""
    services = Services(config=config)
    try:
        from milterfilters.dns import make_resolver
    except ImportError:  # the DNS layer is optional until a filter needs it
        pass
    else:
        services.resolver_factory = make_resolver
    return services


def build_chain(
    config: Config | str | os.PathLike[str] | None = None, *, services: Services | None = None
) -> Chain:
    """Build the chain from a :class:`Config`, a TOML file path, or the embedded default."""
    if not isinstance(config, Config):
        config = load_config(config)
    services = services or default_services(config)
    links = [
        ChainLink(_make_filter(spec, services, config), spec.settings) for spec in config.enabled_filters
    ]
    actions = config.actions
    policy = Policy(
        weights=config.weights(),
        tag=actions.tag,
        quarantine=actions.quarantine,
        reject=actions.reject,
        subject_prefix=actions.subject_prefix,
        reject_reply=SmtpReply(554, "5.7.1", actions.reject_text),
    )
    return Chain(
        links,
        policy,
        authserv_id=config.milter.effective_authserv_id,
        status_headers=actions.status_headers,
        max_body_bytes=config.milter.max_body_bytes,
        metrics=services.metrics,
    )


def _make_filter(spec: FilterSpec, services: Services, config: Config) -> Filter:
    """Build one filter; a failure (missing model, unreadable key file) is a configuration
    error naming the configuration file and the filter's section."""
    try:
        return spec.cls(spec.options, services)
    except ConfigError as e:
        key = e.key if e.key.startswith(spec.name) else spec.name
        detail = f"{e.source}: {e.message}" if e.source and e.source != config.source else e.message
        raise ConfigError(detail, source=config.source, key=key) from e
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot start this filter: {e}", source=config.source, key=spec.name) from e


@dataclass(frozen=True)
class RecipientOutcome:
    """What happened to one recipient at RCPT."""

    address: str
    decision: Decision

    @property
    def action(self) -> Action:
        return self.decision.action

    def as_dict(self) -> dict[str, object]:
        refused = self.decision.action in (Action.REJECT, Action.TEMPFAIL)
        return {
            "address": self.address,
            "action": self.decision.action.label if refused else "accept",
            "reply": self.decision.reply.as_dict() if refused and self.decision.reply else None,
        }


@dataclass(frozen=True)
class Outcome:
    """The result of judging one transaction: the decision and where it was made."""

    decision: Decision
    stage: Stage
    recipients: tuple[RecipientOutcome, ...] = ()

    @property
    def action(self) -> Action:
        return self.decision.action

    def as_dict(self) -> dict[str, object]:
        d = self.decision
        return {
            "action": d.action.label,
            "stage": self.stage.value,
            "reply": d.reply.as_dict() if d.reply else None,
            "score": round(d.score, 4),
            "symbols": [f.as_dict() for f in d.findings],
            "dry_run_symbols": [f.as_dict() for f in d.dry_run_findings],
            "recipients": [r.as_dict() for r in self.recipients],
            "add_headers": [[h.name, h.value] for h in d.added_headers],
            "subject_prefix": d.subject_prefix,
            "errors": list(d.errors),
        }


def sender_from_headers(message: Message) -> str:
    """The envelope sender to assume when none is given: Return-Path, else From."""
    for name in ("Return-Path", "From"):
        value = message.get(name)
        if value:
            addrs = [a for _, a in getaddresses([value]) if a]
            if addrs:
                return addrs[0]
            if name == "Return-Path" and strip_angle_brackets(value) == "":
                return ""
    return ""


def evaluate(
    chain: Chain,
    message: bytes | Message,
    *,
    client_ip: str | None = None,
    client_name: str | None = None,
    helo: str | None = None,
    auth_user: str | None = None,
    mail_from: str | None = None,
    recipients: Sequence[str] = (),
    queue_id: str = "",
) -> Outcome:
    """Run ``chain`` over one transaction, as the milter would, and return the outcome.

    ``mail_from`` of ``""`` or ``"<>"`` is the null sender; ``None`` takes it from the
    message's Return-Path or From. The top-level decision covers accepted recipients.
    """
    if not isinstance(message, Message):
        message = parse_message(message, max_body_bytes=chain.max_body_bytes)
    ip = client_ip or "127.0.0.1"
    family = "inet6" if ":" in ip else "inet"
    connection = Connection(
        client_address=ip,
        client_name=client_name or "unknown",
        family=family,
        mta_hostname=socket.gethostname(),
    )
    session = chain.session(connection)
    decision = session.connect()
    if decision.refuses:
        return Outcome(decision, Stage.CONNECT)
    decision = session.helo(helo or client_name or f"[{ip}]")
    if decision.refuses:
        return Outcome(decision, Stage.HELO)
    sender = sender_from_headers(message) if mail_from is None else strip_angle_brackets(mail_from)
    auth = Auth(login=auth_user, mechanism="PLAIN") if auth_user else None
    decision = session.mail(sender, auth=auth, queue_id=queue_id)
    if decision.action in (Action.REJECT, Action.TEMPFAIL, Action.DISCARD):
        return Outcome(decision, Stage.MAIL)
    outcomes = []
    discarded: Decision | None = None
    for rcpt in recipients:
        d = session.rcpt(strip_angle_brackets(rcpt))
        outcomes.append(RecipientOutcome(rcpt, d))
        if d.action is Action.DISCARD:
            discarded = d
    if discarded is not None:
        return Outcome(discarded, Stage.RCPT, tuple(outcomes))
    if recipients and all(o.decision.refuses for o in outcomes):
        worst = max(outcomes, key=lambda o: o.decision.action).decision
        return Outcome(worst, Stage.RCPT, tuple(outcomes))
    decision = session.eom(message)
    return Outcome(decision, Stage.EOM, tuple(outcomes))


def check_message(
    message: bytes | Message,
    config: Config | str | os.PathLike[str] | None = None,
    **transaction: object,
) -> Outcome:
    """Build a chain from ``config`` and judge one message (see :func:`evaluate`)."""
    return evaluate(build_chain(config), message, **transaction)  # type: ignore[arg-type]
