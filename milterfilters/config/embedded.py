"""The embedded default: the configuration used when no file is given or found.

It protects out of the box: relay authorization, SPF (MAIL FROM and HELO), DKIM, DMARC,
Authentication-Results forgery removal, GTUBE, the size limit and the classifier, with one
Authentication-Results header written for every message, through the system resolver.
Nothing in it rejects on DNS results: SPF and DMARC failures only add to the score
(``reject_policy_action``, ``quarantine_policy_action`` and ``unusable_from`` are
``"score"`` here), so a newcomer's milter never refuses mail on a policy they did not
choose. A configuration *file* starts from the option defaults instead (SPF, DKIM and
DMARC off), as it always has; ``milterfilters config > FILE`` writes this one out.
"""

from __future__ import annotations

#: what ``Config.source`` says for the embedded default
EMBEDDED_SOURCE = "<embedded default>"

#: the embedded default, as TOML (every key not named keeps its option default)
EMBEDDED_DEFAULT_TOML = """\
[spf]
enabled = true
check_helo = true

[dkim]
enabled = true

[dmarc]
enabled = true
reject_policy_action = "score"
quarantine_policy_action = "score"
unusable_from = "score"
"""
