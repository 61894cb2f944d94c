"""The chain: runs the filters of each stage and combines their verdicts into decisions.

Pure logic, no I/O of its own: the milter adapter, the ``check`` command and tests all
drive a :class:`Session` the same way (connect → helo → mail → rcpt… → eom).

Combination rules:

* A filter's direct ``REJECT`` (or ``DISCARD``) short-circuits the stage: later filters of
  that stage do not run.
* A filter that raises, returns something that is not a verdict, asks for an action that
  is illegal at the stage, or runs past its ``timeout`` gets its configured ``on_error``
  (tempfail 451 4.7.1 by default); this is logged and counted. Each call gets
  ``ctx.deadline`` at its ``timeout`` (core/deadline.py): work that checks it stops there
  (``DeadlineExceeded``), and the overrun is ``on_error`` at once.
* ``TAG``/``QUARANTINE`` asked for before end of data are carried to end of data.
* At end of data the findings of all stages are scored by the policy; the final action
  is the most severe of the filters' direct actions and the score's action.
* A dry-run filter's findings are scored and shown apart, and never change the action.
* A filter sees the findings and authentication results of the earlier stages and of the
  filters before it in the same stage (DMARC, at end of data, reads what DKIM found there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from milterfilters.core.authresults import LINE_LENGTH, fold, render_authentication_results
from milterfilters.core.context import Auth, Connection, Context, Envelope, Message, Recipient
from milterfilters.core.deadline import Deadline, DeadlineExceeded
from milterfilters.core.decision_log import LogFormat, decision_record, log_decision
from milterfilters.core.filter import Filter, FilterSettings
from milterfilters.core.logins import login_problem, trusted_auth
from milterfilters.core.metrics import Metrics
from milterfilters.core.policy import Policy
from milterfilters.core.stages import DEFERRED_TO_EOM, Stage, is_legal
from milterfilters.core.verdict import (
    Action,
    AuthResult,
    Decision,
    HeaderAdd,
    HeaderDelete,
    HeaderPosition,
    ScoredFinding,
    SmtpReply,
    Verdict,
)

log = logging.getLogger("milterfilters.chain")

_ERROR_REPLIES = {
    "tempfail": (Action.TEMPFAIL, 451, "4.7.1"),
    "reject": (Action.REJECT, 550, "5.7.1"),
}


@dataclass(frozen=True)
class ChainLink:
    """One filter in the chain with its common settings."""

    filter: Filter
    settings: FilterSettings = field(default_factory=FilterSettings)

    @property
    def name(self) -> str:
        return self.filter.name


class ChainOrderError(ValueError):
    """A filter runs before a filter whose findings it reads (its ``after``)."""


def check_order(links: Sequence[ChainLink]) -> list[str]:
    """Check each filter's ``after``: raise :class:`ChainOrderError` when a filter it reads
    comes later in the chain; return a warning for each one that is absent or in dry-run
    (its findings never reach the reader)."""
    position = {link.name: i for i, link in enumerate(links)}
    warnings = []
    for i, link in enumerate(links):
        for needed in link.filter.after:
            where = position.get(needed)
            if where is None:
                state = "disabled (not in the chain)"
            elif where > i:
                raise ChainOrderError(
                    f"filter {link.name!r} reads what {needed!r} finds, so {needed!r} must come "
                    f"before it in the chain (order now: {', '.join(position)})"
                )
            elif links[where].settings.dry_run:
                state = "in dry-run"
            else:
                continue
            warnings.append(
                f"{link.name} reads what the {needed} filter finds, but the {needed} filter is "
                f"{state}: {link.name} sees none of its results"
            )
    return warnings


class Chain:
    """An ordered set of filters with a policy. Built once; shared by all connections.

    Each filter's ``symbols`` give the default weights; the policy's ``weights`` (the
    ``[scores]`` table) override them. Raises :class:`ChainOrderError` when a filter comes
    before one it reads (see :attr:`Filter.after`).
    """

    def __init__(
        self,
        links: Sequence[ChainLink],
        policy: Policy | None = None,
        *,
        authserv_id: str = "localhost",
        status_headers: bool = True,
        spam_headers: SpamHeaders | None = None,
        max_body_bytes: int = 10 * 1024 * 1024,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_format: LogFormat = "text",
    ) -> None:
        self.links = tuple(link for link in links if link.settings.enabled)
        for warning in check_order(self.links):
            log.warning("%s", warning)
        policy = policy or Policy()
        weights = {sym: w for link in self.links for sym, w in link.filter.symbols.items()}
        weights.update(policy.weights)
        self.policy = replace(policy, weights=MappingProxyType(weights))
        self.log_format: LogFormat = log_format
        self.authserv_id = authserv_id
        self.status_headers = status_headers
        self.spam_headers = SpamHeaders() if spam_headers is None else spam_headers
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._by_stage = {
            stage: tuple(link for link in self.links if stage in link.filter.stages()) for stage in Stage
        }

    def links_for(self, stage: Stage) -> tuple[ChainLink, ...]:
        return self._by_stage[stage]

    @property
    def stages(self) -> frozenset[Stage]:
        """Stages at which some filter runs (the milter negotiates only these)."""
        return frozenset(s for s, links in self._by_stage.items() if links)

    @property
    def needs_body(self) -> bool:
        return any(link.filter.needs_body for link in self.links_for(Stage.EOM))

    @property
    def needs_headers(self) -> bool:
        """Whether the milter must receive the header: a filter reads it, or tagging
        prefixes the Subject (which must be found to be changed, not added twice)."""
        if self.policy.subject_prefix and self.policy.tag is not None:
            return True
        return any(link.filter.needs_headers or link.filter.needs_body for link in self.links_for(Stage.EOM))

    def session(self, connection: Connection | None = None) -> Session:
        """Start judging one SMTP connection."""
        return Session(self, connection or Connection())

    def close(self) -> None:
        for link in self.links:
            try:
                link.filter.close()
            except Exception:
                log.exception("filter %s failed to close", link.name)


@dataclass
class _Collected:
    """What the filters of one or more stages said, being combined."""

    findings: list[ScoredFinding] = field(default_factory=list)
    dry_run: list[ScoredFinding] = field(default_factory=list)
    headers: list[HeaderAdd | HeaderDelete] = field(default_factory=list)
    auth_results: list[AuthResult] = field(default_factory=list)
    action: Action = Action.CONTINUE
    reply: SmtpReply | None = None
    decided_by: str = ""
    deferred: Action = Action.CONTINUE
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def absorb(self, other: _Collected) -> None:
        self.findings += other.findings
        self.dry_run += other.dry_run
        self.headers += other.headers
        self.auth_results += other.auth_results
        self.errors += other.errors
        self.deferred = max(self.deferred, other.deferred)
        self.elapsed += other.elapsed
        if other.action > self.action:
            self.action, self.reply, self.decided_by = other.action, other.reply, other.decided_by


class Session:
    """The chain applied to one SMTP connection; one transaction at a time.

    Each stage method returns a :class:`Decision`. Not thread-safe: one per connection.
    """

    def __init__(self, chain: Chain, connection: Connection) -> None:
        self.chain = chain
        self.connection = connection
        self.macros: dict[str, str] = {}
        self.helo_name: str | None = None
        # what CONNECT and the latest HELO found: apply to every message of the connection
        self._connect_state = _Collected()
        self._helo_state = _Collected()
        self._reset_transaction()

    # -- transaction bookkeeping ---------------------------------------------------------

    def _reset_transaction(self) -> None:
        self.auth: Auth | None = None
        self.envelope: Envelope | None = None
        self.queue_id = ""
        self.refused_recipients: list[tuple[Recipient, Decision]] = []
        self._tx = _Collected()
        self._tx_start = self.chain.clock()

    def abort(self) -> None:
        """The MTA aborted the transaction (RSET, or a refusal elsewhere)."""
        self._reset_transaction()

    def update_macros(self, macros: dict[str, str]) -> None:
        self.macros.update({k: v for k, v in macros.items() if v is not None})

    def _context(self, stage: Stage, **extra: object) -> Context:
        state = self._collected_so_far()
        ctx = Context(
            stage=stage,
            connection=self.connection,
            helo=self.helo_name,
            auth=self.auth,
            envelope=self.envelope,
            queue_id=self.queue_id,
            macros=dict(self.macros),
            findings=tuple(f.finding for f in state.findings),
            auth_results=tuple(state.auth_results),
        )
        return ctx.but(**extra) if extra else ctx

    def _collected_so_far(self) -> _Collected:
        so_far = _Collected()
        so_far.absorb(self._connect_state)
        so_far.absorb(self._helo_state)
        so_far.absorb(self._tx)
        return so_far

    # -- running filters -----------------------------------------------------------------

    def _error_verdict(self, link: ChainLink, stage: Stage, what: str) -> Verdict | None:
        self.chain.metrics.inc("filter_errors_total", filter=link.name)
        mode = link.settings.on_error
        if mode == "ignore" or link.settings.dry_run:
            return None
        action, code, enhanced = _ERROR_REPLIES[mode]
        if action is Action.TEMPFAIL:
            text = "Temporary failure in message checks, try again later"
        else:
            text = "Message refused by message checks"
        return Verdict(action=action, reply=SmtpReply(code, enhanced, text))

    def _run_link(self, link: ChainLink, stage: Stage, ctx: Context) -> tuple[Verdict | None, str]:
        """Run one filter; returns its verdict (or its on_error verdict) and an error text.

        The filter gets a deadline (``ctx.deadline``) at its ``timeout``: raising
        :class:`DeadlineExceeded` there, or returning after it, is a timeout.
        """
        clock = self.chain.clock
        start = clock()
        deadline = Deadline(start + link.settings.timeout, clock)
        try:
            verdict = link.filter.run(stage, ctx.but(deadline=deadline))
            if verdict is not None and not isinstance(verdict, Verdict):
                raise TypeError(f"returned {type(verdict).__name__}, not a Verdict")
            if (
                verdict is not None
                and verdict.action is not Action.CONTINUE
                and not (is_legal(stage, verdict.action) or verdict.action in DEFERRED_TO_EOM)
            ):
                raise ValueError(f"action {verdict.action.label} is not legal at {stage.value}")
        except DeadlineExceeded as e:
            return self._timed_out(link, stage, clock() - start, str(e))
        except Exception as e:
            error = f"{link.name}: {type(e).__name__}: {e}"
            log.error("filter %s failed at %s: %s", link.name, stage.value, error, exc_info=True)
            return self._error_verdict(link, stage, error), error
        elapsed = clock() - start
        self.chain.metrics.observe("filter_duration_seconds", elapsed, filter=link.name, stage=stage.value)
        if elapsed > link.settings.timeout:
            return self._timed_out(link, stage, elapsed)
        return verdict, ""

    def _timed_out(
        self, link: ChainLink, stage: Stage, elapsed: float, where: str = ""
    ) -> tuple[Verdict | None, str]:
        """A filter overran its ``timeout``: its on_error verdict, logged and counted."""
        self.chain.metrics.inc("filter_timeouts_total", filter=link.name)
        stopped = f", stopped: {where}" if where else ""
        error = f"{link.name}: timed out after {elapsed:.2f}s (limit {link.settings.timeout}s){stopped}"
        log.error("filter %s %s", link.name, error)
        return self._error_verdict(link, stage, error), error

    def _run_stage(self, stage: Stage, ctx: Context) -> _Collected:
        out = _Collected()
        start = self.chain.clock()
        policy = self.chain.policy
        for link in self.chain.links_for(stage):
            verdict, error = self._run_link(link, stage, ctx)
            if error:
                out.errors.append(error)
            if verdict is None:
                continue
            scored = [policy.score(link.name, f) for f in verdict.findings]
            if link.settings.dry_run:
                out.dry_run += scored
                if verdict.action > Action.ACCEPT:
                    log.info(
                        "dry-run: filter %s would %s (%s)", link.name, verdict.action.label, verdict.reply
                    )
                continue
            out.findings += scored
            out.headers += verdict.headers
            out.auth_results += verdict.auth_results
            # later filters of the same stage see what this one found (DMARC reads DKIM at EOM)
            if verdict.findings or verdict.auth_results:
                ctx = ctx.but(
                    findings=ctx.findings + verdict.findings,
                    auth_results=ctx.auth_results + verdict.auth_results,
                )
            action = verdict.action
            if action in DEFERRED_TO_EOM and stage is not Stage.EOM:
                out.deferred = max(out.deferred, action)
                continue
            if action > out.action:
                out.action, out.reply, out.decided_by = action, verdict.reply, link.name
            if action in (Action.REJECT, Action.DISCARD):
                break  # hard verdict: the rest of this stage need not run
        out.elapsed = self.chain.clock() - start
        return out

    def _stage_decision(self, collected: _Collected) -> Decision:
        action = collected.action if collected.action > Action.ACCEPT else Action.CONTINUE
        reply = collected.reply
        if action is Action.TEMPFAIL and reply is None:
            reply = SmtpReply(451, "4.7.1", "Service temporarily unavailable, try again later")
        if action is Action.REJECT and reply is None:
            reply = SmtpReply(550, "5.7.1", "Message refused by policy")
        headers: tuple[HeaderAdd | HeaderDelete, ...] = ()
        if collected.auth_results and action in (Action.REJECT, Action.TEMPFAIL):
            # not added to any message, but shown (check --json, the log) so an admin sees why
            value = render_authentication_results(self.chain.authserv_id, collected.auth_results)
            headers = (HeaderAdd("Authentication-Results", value, HeaderPosition.TOP),)
        return Decision(
            action=action,
            reply=reply,
            score=Policy.total(collected.findings),
            findings=tuple(collected.findings),
            dry_run_findings=tuple(collected.dry_run),
            headers=headers,
            decided_by=collected.decided_by,
            errors=tuple(collected.errors),
        )

    def _refusal_logged(self, stage: Stage, decision: Decision, recipients: Sequence[str] = ()) -> Decision:
        if decision.action is not Action.CONTINUE:
            self.chain.metrics.inc("decisions_total", action=decision.action.label, stage=stage.value)
            self._log(stage, decision, recipients)
        return decision

    def _log(self, stage: Stage, decision: Decision, recipients: Sequence[str]) -> None:
        record = decision_record(
            stage=stage,
            decision=decision,
            connection=self.connection,
            queue_id=self.queue_id,
            helo=self.helo_name,
            auth=self.auth,
            envelope=self.envelope,
            recipients=recipients,
            elapsed=self.chain.clock() - self._tx_start,
        )
        log_decision(record, self.chain.log_format)

    # -- stages --------------------------------------------------------------------------

    def connect(self) -> Decision:
        """The client connected (``self.connection``)."""
        collected = self._run_stage(Stage.CONNECT, self._context(Stage.CONNECT))
        self._connect_state = collected
        return self._refusal_logged(Stage.CONNECT, self._stage_decision(collected))

    def helo(self, name: str) -> Decision:
        """HELO/EHLO ``name``; a new one (EHLO again after STARTTLS) replaces what the last found."""
        self.helo_name = name
        self._helo_state = _Collected()
        collected = self._run_stage(Stage.HELO, self._context(Stage.HELO))
        self._helo_state = collected
        return self._refusal_logged(Stage.HELO, self._stage_decision(collected))

    def mail(
        self,
        address: str,
        args: Sequence[str] = (),
        *,
        auth: Auth | None = None,
        queue_id: str = "",
    ) -> Decision:
        """MAIL FROM: ``address`` without angle brackets ("" for the null sender).

        ``auth`` counts only if its login is valid (:mod:`milterfilters.core.logins`): an
        empty, blank or control-character login leaves the client unauthenticated.
        """
        self._reset_transaction()
        self.auth = trusted_auth(auth)
        if auth is not None and auth.login and self.auth is None:
            problem = login_problem(auth.login)
            log.warning("SASL login not trusted (%s): client treated as unauthenticated", problem)
            self.chain.metrics.inc("untrusted_logins_total")
        self.queue_id = queue_id
        self.envelope = Envelope(mail_from=address, mail_args=tuple(args))
        collected = self._run_stage(Stage.MAIL, self._context(Stage.MAIL))
        self._tx.absorb(collected)
        return self._refusal_logged(Stage.MAIL, self._stage_decision(collected))

    def rcpt(self, address: str, args: Sequence[str] = ()) -> Decision:
        """RCPT TO: judged on its own; accepted recipients join the envelope."""
        if self.envelope is None:
            self.mail("")
        assert self.envelope is not None
        recipient = Recipient(address=address, args=tuple(args))
        collected = self._run_stage(Stage.RCPT, self._context(Stage.RCPT, recipient=recipient))
        decision = self._stage_decision(collected)
        if decision.action in (Action.REJECT, Action.TEMPFAIL):
            self.refused_recipients.append((recipient, decision))
            return self._refusal_logged(Stage.RCPT, decision, recipients=[address])
        self._tx.absorb(collected)
        self.envelope = replace(self.envelope, recipients=self.envelope.recipients + (recipient,))
        return decision

    def set_queue_id(self, queue_id: str) -> None:
        if queue_id:
            self.queue_id = queue_id

    def eom(self, message: Message) -> Decision:
        """End of data: run the content filters and decide for the whole message."""
        if self.envelope is None:
            self.mail("")
        collected = self._run_stage(Stage.EOM, self._context(Stage.EOM, message=message))
        self._tx.absorb(collected)
        state = self._collected_so_far()
        decision = self._final_decision(state, message)
        self.chain.metrics.inc("messages_total", action=decision.action.label)
        for scored in decision.findings:
            self.chain.metrics.inc("findings_total", symbol=scored.finding.symbol)
        assert self.envelope is not None
        self._log(Stage.EOM, decision, [r.address for r in self.envelope.recipients])
        self._reset_transaction()
        return decision

    def _final_decision(self, state: _Collected, message: Message) -> Decision:
        policy = self.chain.policy
        score = Policy.total(state.findings)
        by_score = policy.action_for(score)
        hard = max(state.action, state.deferred)
        action = max(by_score, hard, Action.ACCEPT)
        reply: SmtpReply | None = None
        decided_by = "policy"
        if action is hard and action > by_score:
            reply, decided_by = state.reply, state.decided_by or "policy"
        if action is Action.REJECT and reply is None:
            reply = policy.reject_reply
        if action is Action.TEMPFAIL and reply is None:
            reply = SmtpReply(451, "4.7.1", "Service temporarily unavailable, try again later")
        headers: list[HeaderAdd | HeaderDelete] = list(state.headers)
        if state.auth_results:
            headers.insert(
                0,
                HeaderAdd(
                    "Authentication-Results",
                    render_authentication_results(self.chain.authserv_id, state.auth_results),
                    HeaderPosition.TOP,
                ),
            )
        if self.chain.status_headers:
            headers += self._status_headers(score, action, state)
        return Decision(
            action=action,
            reply=reply,
            score=score,
            findings=tuple(state.findings),
            dry_run_findings=tuple(state.dry_run),
            headers=tuple(headers),
            subject_prefix=policy.subject_prefix if action is Action.TAG else "",
            quarantine_reason=f"milterfilters: score {score:.2f}" if action is Action.QUARANTINE else "",
            decided_by=decided_by,
            errors=tuple(state.errors),
        )

    @staticmethod
    def _symbol_list(findings: Sequence[ScoredFinding]) -> str:
        return ", ".join(f"{f.finding.symbol}({f.score:g})" for f in findings) or "none"

    def _status_headers(self, score: float, action: Action, state: _Collected) -> list[HeaderAdd]:
        """Our verdict headers, from typed parts only: a number, symbol names (validated by
        :class:`Finding`) with their weights, an action label; folded at spaces. Then the
        SpamAssassin-compatible ``X-Spam-*`` fields (:class:`SpamHeaders`)."""

        def header(name: str, value: str) -> HeaderAdd:
            return HeaderAdd(name, fold(name, value))

        out = [
            header("X-Milterfilters-Score", f"{score:.2f}"),
            header("X-Milterfilters-Symbols", self._symbol_list(state.findings)),
        ]
        if state.dry_run:
            would = self.chain.policy.action_for(score + Policy.total(state.dry_run))
            out.append(
                header("X-Milterfilters-Dry-Run", f"{self._symbol_list(state.dry_run)}; would={would.label}")
            )
        spam = self.chain.spam_headers
        tagged = action in (Action.TAG, Action.QUARANTINE)
        if spam.flag and tagged:
            out.append(header(spam.flag, "YES"))
        if spam.status:
            tests = sorted({f.finding.symbol for f in state.findings})
            out.append(
                HeaderAdd(spam.status, spam_status(spam.status, tagged, score, self.chain.policy, tests))
            )
        if spam.score:
            out.append(header(spam.score, f"{score:.1f}"))
        if spam.level:
            out.append(header(spam.level, "*" * min(max(int(score), 0), SPAM_LEVEL_MAX)))
        return out


#: X-Spam-Level has one star per whole point of score, at most this many (as SpamAssassin)
SPAM_LEVEL_MAX = 50


@dataclass(frozen=True)
class SpamHeaders:
    """Names of the SpamAssassin-compatible fields written beside ``X-Milterfilters-*``, so
    that Sieve rules, mail clients and tools made for SpamAssassin read our verdict. An
    empty name leaves that field out; :meth:`off` leaves them all out."""

    flag: str = "X-Spam-Flag"
    status: str = "X-Spam-Status"
    score: str = "X-Spam-Score"
    level: str = "X-Spam-Level"

    @classmethod
    def off(cls) -> SpamHeaders:
        return cls("", "", "", "")


def spam_status(name: str, tagged: bool, score: float, policy: Policy, tests: Sequence[str]) -> str:
    """``Yes, score=7.3 required=6.0 tests=A,B`` as SpamAssassin writes it (``required`` is the
    first threshold set; ``tests=none`` when nothing was found), folded after a comma of the
    test list or at a space where a line would pass 78 characters."""
    required = next((t for t in (policy.tag, policy.quarantine, policy.reject) if t is not None), None)
    head = f"{'Yes' if tagged else 'No'}, score={score:.1f}"
    if required is not None:
        head += f" required={required:.1f}"
    value = fold(name, head)
    column = len(f"{name}: {value}".rsplit("\n", 1)[-1])
    items = [f"{t}," for t in tests[:-1]] + [tests[-1] if tests else "none"]
    items[0] = "tests=" + items[0]
    for i, item in enumerate(items):
        separator = " " if i == 0 else ""
        if column + len(separator) + len(item) > LINE_LENGTH:
            value += "\n\t" + item
            column = 1 + len(item)
        else:
            value += separator + item
            column += len(separator) + len(item)
    return value
