"""A query's ``model`` filter: a model the account could have used, or a 404 (as for an unknown key).

Known means in the catalog, or seen in the account's rollups (a model since dropped from the
catalog still has its history). The catalog answers without a read, so only a name outside it
costs one query: the account's month rows per model, a few per month of history.
"""

from __future__ import annotations

from collections.abc import Collection

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.core.clock import EARLIEST, LATEST, label
from meterway.core.errors import ModelNotFound


def model_filter(catalog: Collection[str], rollups: RollupStore, account_id: str, model: str | None) -> str | None:
    if model is None or model in catalog:
        return model
    history = rollups.query(account_id, "month", "model", label(EARLIEST, "month"), label(LATEST, "month"))
    if any(row["value"] == model for row in history):
        return model
    raise ModelNotFound(f"No model '{model}' in the catalog or this account's usage. GET /v1/models lists the ids.")
