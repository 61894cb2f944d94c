"""``Context.but`` is ``dataclasses.replace``, only cheaper (the chain makes one per filter call)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milterfilters.core.context import Connection, Context, Envelope
from milterfilters.core.deadline import Deadline
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import AuthResult, Finding

CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "helo": st.none() | st.text(max_size=20),
        "queue_id": st.text(max_size=10),
        "findings": st.lists(
            st.builds(Finding, st.from_regex(r"[A-Z][A-Z_]{0,10}", fullmatch=True)), max_size=3
        ).map(tuple),
        "auth_results": st.lists(st.builds(AuthResult, st.just("spf"), st.just("pass")), max_size=2).map(
            tuple
        ),
        "deadline": st.floats(0, 1e9).map(lambda t: Deadline(t, lambda: 0.0)),
    },
)


@given(CHANGES)
def test_but_equals_replace(changes: dict[str, object]) -> None:
    ctx = Context(
        stage=Stage.EOM, connection=Connection(client_address="192.0.2.1"), envelope=Envelope("a@b.example")
    )
    copied = ctx.but(**changes)
    expected = dataclasses.replace(ctx, **changes)  # type: ignore[arg-type]
    assert copied == expected and copied is not ctx
    assert {f.name: getattr(copied, f.name) for f in dataclasses.fields(Context)} == {
        f.name: getattr(expected, f.name) for f in dataclasses.fields(Context)
    }
    assert ctx == Context(
        stage=Stage.EOM, connection=Connection(client_address="192.0.2.1"), envelope=Envelope("a@b.example")
    )


def test_but_refuses_an_unknown_field_and_stays_frozen() -> None:
    ctx = Context(stage=Stage.MAIL)
    with pytest.raises(TypeError, match="no field 'helo_name'"):
        ctx.but(helo_name="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.but(helo="x").helo = "y"  # type: ignore[misc]
