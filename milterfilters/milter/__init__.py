"""The MTA side: the milter protocol through pymilter (thin: the chain decides).

Modules:

* ``adapter``  — pymilter callbacks → a chain :class:`~milterfilters.core.chain.Session` → milter replies
* ``worker``   — one libmilter process serving the adapter; reloads its chain on request
* ``server``   — ``milterfilters run``: the supervisor that starts, reloads and restarts workers
* ``commands`` — the ``run`` command
"""
