"""The filter interface: the :class:`Filter` base class and the settings every filter takes.

A filter is built once at start-up from its options and the shared services, and is then
shared by every connection and thread: it must keep no per-message state on ``self``.
It overrides the stage methods it needs; each returns a :class:`Verdict` or ``None``
(no opinion). The chain only calls (and the milter only negotiates) the stages that some
enabled filter overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from milterfilters.core.context import Context
from milterfilters.core.schema import doc, in_range
from milterfilters.core.services import Services
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import Verdict

OnError = Literal["tempfail", "ignore", "reject"]


@dataclass(frozen=True)
class NoOptions:
    """A filter without options of its own."""


@dataclass(frozen=True)
class FilterSettings:
    """Keys every ``[filters.NAME]`` section takes, beside the filter's own options."""

    enabled: bool = doc("run this filter", True)
    dry_run: bool = doc(
        "compute and log findings, show them in X-Milterfilters-Dry-Run, never change the action",
        False,
    )
    on_error: OnError = doc(
        "what an exception or timeout in this filter does: tempfail (451 4.7.1), ignore, reject",
        "tempfail",
    )
    timeout: float = doc(
        "seconds this filter may take per stage before on_error applies (more than 0, at most 86400)",
        10.0,
        check=in_range(0, 86_400, above=True),
    )


COMMON_KEYS = frozenset(f.name for f in dataclasses.fields(FilterSettings))

_STAGE_METHODS = {
    Stage.CONNECT: "connect",
    Stage.HELO: "helo",
    Stage.MAIL: "mail",
    Stage.RCPT: "rcpt",
    Stage.EOM: "eom",
}


class Filter:
    """Base class for filters. Subclasses set ``name`` and override stage methods."""

    #: section name under ``[filters]`` and the name in logs
    name: ClassVar[str] = ""
    #: dataclass of the filter's own options
    Options: ClassVar[type] = NoOptions
    #: symbols this filter may emit, with their default weights (``[scores]`` overrides)
    symbols: ClassVar[Mapping[str, float]] = {}
    #: whether end-of-message processing needs the body (else the milter skips it)
    needs_body: ClassVar[bool] = False
    #: whether end-of-message processing needs the header fields
    needs_headers: ClassVar[bool] = False
    #: enabled when the configuration does not mention the filter
    enabled_by_default: ClassVar[bool] = True
    #: ``on_error`` when the configuration does not set it (``ignore`` for fail-open filters)
    default_on_error: ClassVar[OnError] = "tempfail"
    #: filters whose findings this one reads in the same stage: they must run before it
    #: (building a chain that puts them after it fails; one that lacks them warns)
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any, services: Services) -> None:
        self.options = options
        self.services = services

    def connect(self, ctx: Context) -> Verdict | None:
        return None

    def helo(self, ctx: Context) -> Verdict | None:
        return None

    def mail(self, ctx: Context) -> Verdict | None:
        return None

    def rcpt(self, ctx: Context) -> Verdict | None:
        """Judge ``ctx.recipient``; other recipients are judged in their own calls."""
        return None

    def eom(self, ctx: Context) -> Verdict | None:
        return None

    def close(self) -> None:
        """Release resources (called when a reload replaces the filter)."""

    @classmethod
    def stages(cls) -> frozenset[Stage]:
        """The stages this filter class implements."""
        return frozenset(
            stage
            for stage, method in _STAGE_METHODS.items()
            if getattr(cls, method) is not getattr(Filter, method)
        )

    def run(self, stage: Stage, ctx: Context) -> Verdict | None:
        return getattr(self, _STAGE_METHODS[stage])(ctx)  # type: ignore[no-any-return]
