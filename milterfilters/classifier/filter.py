"""The content classifier filter: a calibrated spam probability from the message text.

It reports findings; the policy weighs them. With the default weights and thresholds
(``[actions] tag = 6``, ``reject = 15``):

* ``CLASSIFIER_SPAM`` (weight 6) when the probability reaches ``spam_threshold`` → tag;
* ``CLASSIFIER_SPAM_HIGH`` (weight 9) as well when it reaches ``high_threshold`` → with the
  former, 15 → reject;
* ``CLASSIFIER_HAM`` (weight -1) when it is below ``ham_threshold``, a nudge against other
  filters' false alarms.

A message with fewer than ``min_words`` words of body text is little evidence: it needs
``short_spam_threshold`` (0.9) for ``CLASSIFIER_SPAM``.

Each finding's detail carries the probability. The model is loaded once, when the filter
is built (at start-up and on every reload, logging the model's id: its checksums' hash and
training date); a missing or broken model stops start-up with a clear error. A message that
cannot be scored at run time gets the filter's ``on_error`` — ``ignore`` by default: the
classifier fails open. A ``shadow_model`` scores every message beside the live model,
logs and counts disagreements, and never acts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import ClassVar

from milterfilters.classifier.features import MessageFeatures
from milterfilters.classifier.model import Model, ModelError, TokenWeight, load_model_cached
from milterfilters.classifier.parsing import DEFAULT_MAX_BYTES, DEFAULT_TIME_BUDGET
from milterfilters.classifier.paths import DEFAULT_MODEL_DIR
from milterfilters.core.context import Context, Message
from milterfilters.core.filter import Filter, OnError
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, Verdict

log = logging.getLogger("milterfilters.classifier")


@dataclass(frozen=True)
class ClassifierOptions:
    model: str = doc("model directory; empty means the shipped default model (inside the package)", "")
    shadow_model: str = doc("second model scored beside the live one, never acted on; empty = none", "")
    spam_threshold: float = doc("probability at which CLASSIFIER_SPAM is emitted", 0.5)
    high_threshold: float = doc("probability at which CLASSIFIER_SPAM_HIGH is emitted as well", 0.99)
    ham_threshold: float = doc("probability below which CLASSIFIER_HAM is emitted", 0.01)
    min_words: int = doc("messages with fewer words of body text are judged on strong evidence only", 12)
    short_spam_threshold: float = doc(
        "probability at which CLASSIFIER_SPAM is emitted for a message shorter than min_words", 0.9
    )
    max_bytes: int = doc("bytes of the message read (a prefix of larger ones)", DEFAULT_MAX_BYTES)
    time_budget: float = doc("seconds the MIME walk may take before the rest is skipped", DEFAULT_TIME_BUDGET)

    def validate(self) -> None:
        if not 0.0 <= self.ham_threshold <= self.spam_threshold <= self.high_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= ham <= spam <= high <= 1")
        if not self.spam_threshold <= self.short_spam_threshold <= 1.0:
            raise ValueError("short_spam_threshold must be between spam_threshold and 1")
        if self.min_words < 0:
            raise ValueError("min_words must not be negative")
        if self.max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        if self.time_budget <= 0:
            raise ValueError("time_budget must be positive")


def body_word_count(features: MessageFeatures) -> int:
    """Words of body text: all but the subject's (``s:``), which come first."""
    words = features.words
    subject = next((i for i, w in enumerate(words) if not w.startswith("s:")), len(words))
    return len(words) - subject


class ClassifierFilter(Filter):
    """Scores the message content with a trained model (spam probability)."""

    name = "classifier"
    Options = ClassifierOptions
    symbols: ClassVar[dict[str, float]] = {
        "CLASSIFIER_SPAM": 6.0,
        "CLASSIFIER_SPAM_HIGH": 9.0,
        "CLASSIFIER_HAM": -1.0,
    }
    needs_body = True
    needs_headers = True
    default_on_error: ClassVar[OnError] = "ignore"
    options: ClassifierOptions

    def __init__(self, options: ClassifierOptions, services: Services) -> None:
        super().__init__(options, services)
        self.model: Model = self._load(services, "model", options.model or DEFAULT_MODEL_DIR)
        self.shadow: Model | None = (
            self._load(services, "shadow_model", options.shadow_model) if options.shadow_model else None
        )

    def _load(self, services: Services, key: str, directory: str | os.PathLike[str]) -> Model:
        """The model in ``directory``, its id logged (the filter is built at start-up and on every
        reload); an error names the configuration file and key."""
        try:
            model = load_model_cached(directory)
        except ModelError as e:
            raise ModelError(str(e), source=services.config_source, key=f"{self.name}.{key}") from None
        log.info("classifier %s: %s from %s", key, model.model_id, directory)
        return model

    def _raw(self, message: Message) -> bytes:
        return message.raw_head() + message.body[: self.options.max_bytes]

    def features(self, message: Message, model: Model | None = None) -> MessageFeatures:
        """The words and traits ``model`` (the live one by default) reads in ``message``; computed
        once per message and reading settings, then shared (live and shadow model, ``explain``)."""
        model = model or self.model
        opts = self.options
        key = ("classifier.features", model.settings, opts.max_bytes, opts.time_budget)
        return message.view(
            key, lambda m: model.vectorizer.features(self._raw(m), time_budget=opts.time_budget)
        )

    def probability(self, message: Message, model: Model | None = None) -> float:
        """The spam probability ``model`` (the live one by default) gives ``message``."""
        model = model or self.model
        return model.probability(self.features(message, model))

    def explain(self, message: Message, top: int = 12) -> list[TokenWeight]:
        """The tokens that drove the live model's score of ``message`` most."""
        return self.model.explain(self.features(message), top)

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        features = self.features(ctx.message)
        p = self.model.probability(features)
        if not 0.0 <= p <= 1.0:  # NaN too: a damaged model must not pass as an opinion
            raise ValueError(f"classifier produced probability {p!r}")
        annotations: dict[str, object] = {"classifier_probability": p}
        if self.shadow is not None:
            annotations["classifier_shadow_probability"] = self._shadow(ctx, p, features)
        detail = f"p={p:.4f}"
        opts = self.options
        findings = []
        # Little text is little evidence (rspamd's Bayes skips such mail altogether): a short
        # message needs a higher probability to count as spam.
        short = body_word_count(features) < opts.min_words
        if p >= (opts.short_spam_threshold if short else opts.spam_threshold):
            findings.append(Finding("CLASSIFIER_SPAM", detail))
            if p >= opts.high_threshold:
                findings.append(Finding("CLASSIFIER_SPAM_HIGH", detail))
        elif p < opts.ham_threshold:
            findings.append(Finding("CLASSIFIER_HAM", detail))
        return Verdict.found(*findings, annotations=annotations)

    def _shadow(self, ctx: Context, live: float, features: MessageFeatures) -> float | None:
        """Score with the shadow model; count and log disagreement. Never raises.

        ``features`` (the live model's) serve when both models read the same prefix of the
        message: the message is then parsed once.
        """
        assert ctx.message is not None and self.shadow is not None
        metrics = self.services.metrics
        try:
            if self.shadow.settings.max_bytes != self.model.settings.max_bytes:
                features = self.features(ctx.message, self.shadow)
            shadow = self.shadow.probability(features)
        except Exception:
            log.exception("shadow model failed on %s", ctx.queue_id or "message")
            metrics.inc("classifier_shadow_errors_total")
            return None
        metrics.inc("classifier_shadow_scored_total")
        threshold = self.options.spam_threshold
        if (live >= threshold) != (shadow >= threshold):
            metrics.inc("classifier_shadow_disagreements_total")
            log.info(
                "classifier shadow disagrees on %s: live p=%.4f, shadow p=%.4f",
                ctx.queue_id or "message",
                live,
                shadow,
            )
        return shadow
