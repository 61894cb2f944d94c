"""milterfilters: a milter that protects mail servers from spam and relay abuse.

Library use::

    import milterfilters
    chain = milterfilters.build_chain()            # embedded default, or a TOML path
    outcome = milterfilters.evaluate(chain, raw_bytes, client_ip="203.0.113.5",
                                     mail_from="a@example.org", recipients=["b@example.net"])
    print(outcome.action, outcome.decision.score, outcome.decision.symbols)
"""

from milterfilters.api import Outcome, RecipientOutcome, build_chain, check_message, evaluate
from milterfilters.chain import Chain, ChainLink, Session
from milterfilters.config import Config, load_config
from milterfilters.context import Auth, Connection, Context, Envelope, HeaderField, Message, Recipient
from milterfilters.filters.base import Filter, FilterSettings
from milterfilters.message import parse_message
from milterfilters.policy import Policy
from milterfilters.schema import ConfigError
from milterfilters.stages import Stage
from milterfilters.verdict import (
    Action,
    AuthResult,
    Decision,
    Finding,
    HeaderAdd,
    HeaderDelete,
    HeaderPosition,
    SmtpReply,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Auth",
    "AuthResult",
    "Chain",
    "ChainLink",
    "Config",
    "ConfigError",
    "Connection",
    "Context",
    "Decision",
    "Envelope",
    "Filter",
    "FilterSettings",
    "Finding",
    "HeaderAdd",
    "HeaderDelete",
    "HeaderField",
    "HeaderPosition",
    "Message",
    "Outcome",
    "Policy",
    "Recipient",
    "RecipientOutcome",
    "Session",
    "SmtpReply",
    "Stage",
    "Verdict",
    "build_chain",
    "check_message",
    "evaluate",
    "load_config",
    "parse_message",
]
