"""milterfilters: a milter that protects mail servers from spam and relay abuse.

Every name a library user or a plugin author needs is importable from here. Library use::

    import milterfilters
    chain = milterfilters.build_chain()            # embedded default, or a TOML path, or a Config
    outcome = milterfilters.evaluate(chain, raw_bytes, client_ip="203.0.113.5",
                                     mail_from="a@example.org", recipients=["b@example.net"])
    print(outcome.action, outcome.decision.score, outcome.decision.symbols)

A filter of your own subclasses :class:`Filter` (see the README's library section and
docs/ARCHITECTURE.md); a plugin registers it in the ``milterfilters.filters`` entry-point group.
"""

from milterfilters.api import (
    Outcome,
    RecipientOutcome,
    build_chain,
    check_message,
    default_services,
    evaluate,
)
from milterfilters.config import Config, config_from_dict, load_config, render_config
from milterfilters.core.chain import Chain, ChainLink, ChainOrderError, Session
from milterfilters.core.context import (
    Auth,
    Connection,
    Context,
    Envelope,
    HeaderField,
    Message,
    Recipient,
    TlsInfo,
)
from milterfilters.core.errors import ConfigError, UsageError
from milterfilters.core.filter import Filter, FilterSettings, NoOptions
from milterfilters.core.metrics import Metrics
from milterfilters.core.policy import Policy
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import (
    Action,
    AuthResult,
    Decision,
    Finding,
    HeaderAdd,
    HeaderDelete,
    HeaderPosition,
    ScoredFinding,
    SmtpReply,
    Verdict,
)
from milterfilters.mail.message import parse_message

#: the one place the version is written: pyproject.toml reads it, CHANGELOG.md tells what changed
__version__ = "0.2.0.dev0"

__all__ = [
    "Action",
    "Auth",
    "AuthResult",
    "Chain",
    "ChainLink",
    "ChainOrderError",
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
    "Metrics",
    "NoOptions",
    "Outcome",
    "Policy",
    "Recipient",
    "RecipientOutcome",
    "ScoredFinding",
    "Services",
    "Session",
    "SmtpReply",
    "Stage",
    "TlsInfo",
    "UsageError",
    "Verdict",
    "build_chain",
    "check_message",
    "config_from_dict",
    "default_services",
    "doc",
    "evaluate",
    "load_config",
    "parse_message",
    "render_config",
]
