"""SMTP transaction stages and the table of actions legal at each."""

from __future__ import annotations

import enum

from milterfilters.core.verdict import Action


class Stage(enum.Enum):
    """Where in the SMTP transaction a filter runs."""

    CONNECT = "connect"
    HELO = "helo"
    MAIL = "mail"
    RCPT = "rcpt"
    EOM = "eom"  # end of message: headers and body are known


_EARLY = frozenset({Action.CONTINUE, Action.ACCEPT, Action.TEMPFAIL, Action.REJECT})

# Which actions a stage may take directly (libmilter's per-callback return codes;
# discard is meaningless before a transaction exists, tag/quarantine need the message).
LEGAL_ACTIONS: dict[Stage, frozenset[Action]] = {
    Stage.CONNECT: _EARLY,
    Stage.HELO: _EARLY,
    Stage.MAIL: _EARLY | {Action.DISCARD},
    Stage.RCPT: frozenset({Action.CONTINUE, Action.TEMPFAIL, Action.REJECT, Action.DISCARD}),
    Stage.EOM: frozenset(Action) - {Action.CONTINUE},
}

# Actions that a filter may ask for before end of message and that are then carried to
# end of message (a tag or a quarantine needs the message to exist).
DEFERRED_TO_EOM = frozenset({Action.TAG, Action.QUARANTINE})


def is_legal(stage: Stage, action: Action) -> bool:
    """Whether ``action`` can be carried out at ``stage``."""
    return action in LEGAL_ACTIONS[stage]
