"""The core: what a transaction is, what a filter says about it, and how the chain decides.

Standard library only — no socket, no MTA, no DNS, no model — so the same chain runs under
the milter, under ``milterfilters check`` and in a test. Nothing here imports anything above it.

Modules:

* ``verdict``      — :class:`Action` (ordered by severity), :class:`SmtpReply`, :class:`Finding`,
  :class:`Verdict`, :class:`Decision`, header changes
* ``stages``       — the SMTP stages and the table of which action is legal at which
* ``context``      — the frozen transaction :class:`Context` a filter reads
* ``logins``       — SASL logins validated before they are trusted; their comparison key
* ``filter``       — the :class:`Filter` base class and the settings every filter takes
* ``services``     — what filters share (metrics, clock, resolver, trusted networks), built once
* ``policy``       — weights turn findings into a score; thresholds turn a score into an action
* ``chain``        — :class:`Chain` and :class:`Session`: run the filters of each stage, combine
* ``decision_log`` — one log line per decision (text or JSON)
* ``authresults``  — rendering Authentication-Results (RFC 8601)
* ``schema``       — option dataclasses: ``doc()`` and validation naming file and key
* ``metrics``      — thread-safe counters, observations and gauges (exported by ``milterfilters.metrics``)
* ``deadline``     — the per-call :class:`Deadline` a filter's long loops check (its ``timeout``)
* ``errors``       — :class:`ConfigError`, :class:`UsageError`
"""
