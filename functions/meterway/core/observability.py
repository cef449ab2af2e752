"""The one Logger and metrics helper of the service (Powertools); the Tracer is in ``tracing``
because it imports the X-Ray SDK and botocore, which the proxy's cold start should not pay for.

Powertools is imported when the logger is first used, not when this module is: the proxy's
import (its cold start) does not pay for it.

Never log a key, a prompt or a completion: log ids, models, token counts and timings only.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

NAMESPACE = "Meterway"


@cache
def _powertools_logger() -> Logger:
    from aws_lambda_powertools import Logger

    return Logger(service="meterway")


class _FirstUse:
    """Stands for the Logger, made on first use; every attribute is the Logger's own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_powertools_logger(), name)


logger = cast("Logger", _FirstUse())


def count(name: str, value: int = 1, **dimensions: str) -> None:
    """Emit one count metric at once (EMF), without a handler decorator to flush it; ``dimensions``
    beside the service's (``provider="openai"``)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value="meterway")
        for dimension, text in dimensions.items():
            metric.add_dimension(name=dimension, value=text)
