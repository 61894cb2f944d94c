"""Relay authorization and rate limits (docs/relay.md).

Modules:

* ``filter``    — :class:`RelayFilter`: trusted and authenticated clients send anywhere, others
  only to our domains; sender and recipient syntax, routing tricks, login maps
* ``ratelimit`` — :class:`RateLimitFilter`: messages and recipients per client, login or sender
* ``backends``  — where the counts live: process memory or Redis
"""
