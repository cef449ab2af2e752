"""The one Logger and metrics helper of the service (Powertools); the Tracer is in ``tracing``
because it imports the X-Ray SDK and botocore, which the proxy's cold start should not pay for.

Never log a key, a prompt or a completion: log ids, models, token counts and timings only.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(service="meterway")
NAMESPACE = "Meterway"


def count(name: str, value: int = 1, **dimensions: str) -> None:
    """Emit one count metric at once (EMF), without a handler decorator to flush it; ``dimensions``
    beside the service's (``provider="openai"``)."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value="meterway")
        for dimension, text in dimensions.items():
            metric.add_dimension(name=dimension, value=text)
