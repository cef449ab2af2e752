"""Analytics: rollups of the ledger (AggregatorFunction, fed by the ledger's stream) and what is
read from them — usage, activity, the dashboard — plus the request log; the ``/api/usage``,
``/api/activity`` and ``/api/dashboard`` routes."""
