"""The classifier filter in the chain: findings, fail-open on_error, shadow model, --explain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import milterfilters
from milterfilters import Action, build_chain, evaluate
from milterfilters.classifier.filter import ClassifierFilter
from milterfilters.classifier.model import Model, load_model
from milterfilters.cli import main
from milterfilters.config import config_from_dict, render_config
from milterfilters.config.registry import BUILTIN
from milterfilters.core.chain import Chain
from tests.support.defaultconfig import default_config
from tests.support.mailgen import make_messages, write_folder

SPAM = make_messages("spam", 1, 99)[0]
HAM = make_messages("ham", 1, 99)[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model trained on generated mail, and one trained with the labels swapped."""
    root = tmp_path_factory.mktemp("models")
    ham = write_folder(root / "ham", make_messages("ham", 40, 1))
    spam = write_folder(root / "spam", make_messages("spam", 40, 1))
    out = {"good": root / "good", "swapped": root / "swapped"}
    bits = ["--hash-bits", "14"]
    assert main(["train", *bits, "--ham", str(ham), "--spam", str(spam), "--out", str(out["good"])]) == 0
    assert main(["train", *bits, "--ham", str(spam), "--spam", str(ham), "--out", str(out["swapped"])]) == 0
    return out


def chain_with(**classifier: object) -> Chain:
    return build_chain(config_from_dict({"classifier": dict(classifier)}))


def classifier_of(chain: Chain) -> ClassifierFilter:
    (link,) = [link for link in chain.links if link.name == "classifier"]
    assert isinstance(link.filter, ClassifierFilter)
    return link.filter


def test_registered_last_and_fail_open_by_default() -> None:
    assert list(BUILTIN)[-1] == "classifier"
    config = config_from_dict({})
    assert config.filter("classifier").settings.on_error == "ignore"
    assert config.filter("size").settings.on_error == "tempfail"
    assert (
        config_from_dict({"classifier": {"on_error": "tempfail"}}).filter("classifier").settings.on_error
        == "tempfail"
    )
    assert 'on_error = "ignore"' in render_config(config).split("[classifier]")[1]


def test_spam_is_rejected_and_ham_accepted(models: dict[str, Path]) -> None:
    # a model trained on 80 messages is less sure of itself than the shipped one
    chain = chain_with(model=str(models["good"]), high_threshold=0.8, ham_threshold=0.2)
    spam = evaluate(chain, SPAM, recipients=["a@example.org"])
    assert spam.action is Action.REJECT
    assert {"CLASSIFIER_SPAM", "CLASSIFIER_SPAM_HIGH"} <= set(spam.decision.symbols)
    ham = evaluate(chain, HAM, recipients=["a@example.org"])
    assert ham.action is Action.ACCEPT and ham.decision.symbols == ("CLASSIFIER_HAM",)
    assert float(ham.decision.findings[0].finding.detail.removeprefix("p=")) < 0.2


def test_thresholds_decide_which_symbols(models: dict[str, Path]) -> None:
    chain = chain_with(model=str(models["good"]), spam_threshold=0.5, high_threshold=1.0)
    outcome = evaluate(chain, SPAM, recipients=["a@example.org"])
    assert outcome.decision.symbols == ("CLASSIFIER_SPAM",) and outcome.action is Action.TAG


def test_bad_thresholds_are_config_errors() -> None:
    with pytest.raises(milterfilters.ConfigError, match="thresholds"):
        config_from_dict({"classifier": {"spam_threshold": 0.9, "high_threshold": 0.5}})


def test_runtime_failure_yields_on_error(models: dict[str, Path]) -> None:
    good = load_model(models["good"])
    damaged = Model(good.settings, np.full_like(good.weights, np.nan), good.intercept, good.calibration)
    for on_error, expected in (("ignore", Action.ACCEPT), ("tempfail", Action.TEMPFAIL)):
        chain = chain_with(model=str(models["good"]), on_error=on_error)
        classifier_of(chain).model = damaged  # as if memory went bad after start-up
        outcome = evaluate(chain, SPAM, recipients=["a@example.org"])
        assert outcome.action is expected and outcome.decision.errors


def test_shadow_model_counts_disagreements_and_never_acts(models: dict[str, Path]) -> None:
    plain = evaluate(chain_with(model=str(models["good"])), SPAM)
    chain = chain_with(model=str(models["good"]), shadow_model=str(models["swapped"]))
    shadowed = [evaluate(chain, raw) for raw in (SPAM, HAM)]
    assert shadowed[0].action is plain.action and shadowed[0].decision.symbols == plain.decision.symbols
    assert chain.metrics.get("classifier_shadow_scored_total") == 2
    assert chain.metrics.get("classifier_shadow_disagreements_total") == 2
    agreeing = chain_with(model=str(models["good"]), shadow_model=str(models["good"]))
    evaluate(agreeing, SPAM)
    assert agreeing.metrics.get("classifier_shadow_disagreements_total") == 0


def test_a_shadow_model_reading_the_same_prefix_parses_the_message_once(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from milterfilters.classifier import vectorize

    parsed: list[int] = []
    real_parse = vectorize.parse_mail
    monkeypatch.setattr(vectorize, "parse_mail", lambda raw, **kw: parsed.append(1) or real_parse(raw, **kw))
    chain = chain_with(model=str(models["good"]), shadow_model=str(models["swapped"]))
    outcome = evaluate(chain, SPAM)
    assert outcome.decision.errors == () and chain.metrics.get("classifier_shadow_scored_total") == 1
    assert len(parsed) == 1


def test_explain_names_tokens(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[classifier]\nmodel = "{models["good"]}"\n')
    message = tmp_path / "spam.eml"
    message.write_bytes(SPAM)
    assert main(["check", "--config", str(config), "--explain", str(message)]) == 0
    out = capsys.readouterr().out
    assert "CLASSIFIER_SPAM" in out and "tokens that drove the score" in out
    explained = classifier_of(chain_with(model=str(models["good"]))).explain(
        milterfilters.parse_message(SPAM)
    )
    assert explained and all(f"{t.token}" in out for t in explained[:3])


def test_default_model_scores_the_default_chain() -> None:
    chain = build_chain(default_config())
    outcome = evaluate(chain, HAM, recipients=["a@example.org"])
    assert outcome.action is Action.ACCEPT and not outcome.decision.errors
    p = classifier_of(chain).probability(milterfilters.parse_message(SPAM))
    assert 0.0 <= p <= 1.0


def test_short_messages_need_strong_evidence() -> None:
    note = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nSee you at five.\r\n"
    p = classifier_of(build_chain(default_config())).probability(milterfilters.parse_message(note))
    lenient = {
        "spam_threshold": p / 2,
        "short_spam_threshold": (1 + p) / 2,
        "high_threshold": 1.0,
        "ham_threshold": 0.0,
    }
    assert evaluate(chain_with(**lenient), note).decision.symbols == ()
    assert evaluate(chain_with(**lenient, min_words=0), note).decision.symbols == ("CLASSIFIER_SPAM",)
