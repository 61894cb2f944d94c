"""The library entry points: build a chain from a configuration, and judge a message
without any MTA (what ``milterfilters check`` does)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from milterfilters.config import Config, config_from_dict, load_config
from milterfilters.config.instantiate import (
    default_services,
    make_filter,
    make_resolver,
    relay_trusted_networks,
)
from milterfilters.core.chain import Chain, ChainLink, SpamHeaders
from milterfilters.core.context import Auth, Connection, Message, strip_angle_brackets
from milterfilters.core.policy import Policy
from milterfilters.core.services import Services
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import Action, Decision, SmtpReply
from milterfilters.mail.message import parse_message

__all__ = [
    "ConfigLike",
    "Outcome",
    "RecipientOutcome",
    "as_config",
    "build_chain",
    "check_message",
    "default_services",
    "evaluate",
    "make_resolver",
    "relay_trusted_networks",
    "sender_from_headers",
]


ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def as_config(config: ConfigLike) -> Config:
    """A :class:`Config` from a Config, a dict shaped like the TOML file, a TOML file path,
    or ``None`` (the embedded default)."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config)
    return load_config(config)


def build_chain(config: ConfigLike = None, *, services: Services | None = None) -> Chain:
    """Build the chain from a :class:`Config`, a dict shaped like the TOML file, a TOML file
    path, or the embedded default (``None``).

    ``services`` gives the metrics, clock and resolver to use (tests hand in a resolver
    on loopback); what the configuration decides (trusted networks, authserv-id) is
    filled in from ``config``.
    """
    config = as_config(config)
    services = default_services(config, services)
    links = [ChainLink(make_filter(spec, services, config), spec.settings) for spec in config.enabled_filters]
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
        spam_headers=SpamHeaders(
            flag=actions.spam_flag_header,
            status=actions.spam_status_header,
            score=actions.spam_score_header,
            level=actions.spam_level_header,
        ),
        max_body_bytes=config.milter.max_body_bytes,
        metrics=services.metrics,
        log_format=config.logging.format,
    )


_RECIPIENT_ACTIONS = (Action.REJECT, Action.TEMPFAIL, Action.DISCARD)


@dataclass(frozen=True)
class RecipientOutcome:
    """What happened to one recipient at RCPT."""

    address: str
    decision: Decision

    @property
    def action(self) -> Action:
        """``accept`` for a recipient the chain let through, else the refusal it got
        (``reject``, ``tempfail``) or ``discard``."""
        action = self.decision.action
        return action if action in _RECIPIENT_ACTIONS else Action.ACCEPT

    def as_dict(self) -> dict[str, object]:
        """The recipient as ``check --json`` prints it."""
        refused = self.action in (Action.REJECT, Action.TEMPFAIL)
        return {
            "address": self.address,
            "action": self.action.label,
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
        """The action for the whole transaction."""
        return self.decision.action

    def as_dict(self) -> dict[str, object]:
        """The outcome as ``check --json`` prints it."""
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
    config: ConfigLike = None,
    **transaction: object,
) -> Outcome:
    """Build a chain from ``config`` and judge one message (see :func:`evaluate`)."""
    return evaluate(build_chain(config), message, **transaction)  # type: ignore[arg-type]
