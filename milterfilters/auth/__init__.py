"""Message authentication: DKIM, ARC, DMARC, allow-lists, signing (docs/dkim.md).

Modules:

* ``dkim_verify``     — verifying every DKIM signature of a message with dkimpy, through our resolver
* ``dkim_body``       — body canonicalization and hashes, once per message for every signature
* ``arc``             — ARC chain validation (RFC 8617)
* ``dkim_filter``     — :class:`DkimFilter`: DKIM and ARC results as findings and Authentication-Results
* ``dmarc_policy``    — DMARC (RFC 7489): author domains, alignment, record discovery, evaluation
* ``dmarc_filter``    — :class:`DmarcFilter`: applies the author domain's policy; runs after ``dkim``
* ``allowlist``       — :class:`AllowlistFilter`: credit for authenticated partner domains
* ``dkim_sign``       — :class:`DkimSignFilter`: signing outbound mail
* ``dkim_keys``       — signing keys: loading, checking, the DNS record they publish
* ``keygen``          — the ``dkim-keygen`` command
* ``authres_forgery`` — :class:`AuthresForgeryFilter`: removes Authentication-Results claiming our name
* ``inbound``         — the opening the verifying filters share: skip our own outbound mail
"""
