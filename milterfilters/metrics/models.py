"""The id of each live classifier model, reported as the ``model_info`` gauge.

No prometheus-client here: the worker reports through whatever
:class:`~milterfilters.core.metrics.Metrics` it runs with, exported or not.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator

from milterfilters.classifier.model import Model
from milterfilters.core.chain import Chain
from milterfilters.core.metrics import Metrics

log = logging.getLogger("milterfilters.metrics")


def model_id(model: Model) -> str:
    """A model's id: the first 12 hex digits of its weights' SHA-256 and the day it was
    trained (``model.json``'s ``created``), e.g. ``3f2a9c0d1b7e-2026-11-28``."""
    digest = hashlib.sha256(model.weights.tobytes()).hexdigest()[:12]
    created = str(model.metadata.get("created", ""))[:10]
    return f"{digest}-{created}" if re.fullmatch(r"\d{4}-\d\d-\d\d", created) else digest


def live_models(chain: Chain) -> Iterator[tuple[str, str]]:
    """(filter name, model id) of each filter of ``chain`` that scores with a model."""
    for link in chain.links:
        model = getattr(link.filter, "model", None)
        if isinstance(model, Model):
            yield link.name, model_id(model)


def report_live_models(metrics: Metrics, chain: Chain) -> None:
    """Set ``model_info`` to the models ``chain`` scores with (at start-up and each reload)."""
    for name, ident in live_models(chain):
        metrics.info("model_info", "model_id", ident, filter=name)
        log.debug("filter %s scores with model %s", name, ident)
