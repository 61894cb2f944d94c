"""Mail as it arrives: parsing the message and the envelope, and who is talking.

Modules:

* ``message``   — raw bytes to the core's :class:`~milterfilters.core.context.Message` (header fields, body)
* ``addresses`` — RFC 5321 paths: MAIL FROM / RCPT TO parsed into local part and IDNA domain
* ``networks``  — CIDR lists and client-address matching, one implementation for every filter
* ``outbound``  — which mail is ours going out (authenticated or from a trusted network)
* ``identity``  — the SMTP identities (MAIL FROM, HELO) as parsed parts, for SPF and its headers
"""
