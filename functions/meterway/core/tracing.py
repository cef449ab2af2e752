"""Powertools Tracer for the plain Lambda handlers (not the proxy: see ``observability``)."""

from aws_lambda_powertools import Tracer

tracer = Tracer(service="meterway")
