"""The id of each live classifier model, reported as the ``model_info`` gauge.

No prometheus-client here: the worker reports through whatever
:class:`~milterfilters.core.metrics.Metrics` it runs with, exported or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from milterfilters.classifier.model import Model
from milterfilters.core.chain import Chain
from milterfilters.core.metrics import Metrics

log = logging.getLogger("milterfilters.metrics")


def live_models(chain: Chain) -> Iterator[tuple[str, str]]:
    """(filter name, model id) of each filter of ``chain`` that scores with a model."""
    for link in chain.links:
        model = getattr(link.filter, "model", None)
        if isinstance(model, Model):
            yield link.name, model.model_id  # the id the classifier logs


def report_live_models(metrics: Metrics, chain: Chain) -> None:
    """Set ``model_info`` to the models ``chain`` scores with (at start-up and each reload)."""
    for name, ident in live_models(chain):
        metrics.info("model_info", "model_id", ident, filter=name)
        log.debug("filter %s scores with model %s", name, ident)
