"""The RollupsTable's item keys, spelled here and nowhere else.

``pk`` / ``sk``:
- ``<account>#<granularity>#<dimension>`` / ``<bucket>#<value>``: one rollup cell, e.g.
  ``acct#day#model`` / ``2026-11-23#openai/gpt-4o-mini``. Bucket labels sort in time order.
- ``APPLIED#<request_id>`` / ``#``: the marker that a ledger record was counted.
- ``<account>#last-used`` / ``<key_id>``: when each key was last used.
- ``<account>#intermediate`` / ``#``: from when the account's in-between rows (10 minutes, 6 hours,
  10 days, year) are complete.
"""

from __future__ import annotations

from meterway.core.clock import Granularity


def partition(account_id: str, granularity: Granularity, dimension: str) -> str:
    return f"{account_id}#{granularity}#{dimension}"


def cell_sk(bucket: str, value: str) -> str:
    return f"{bucket}#{value}"


def split_cell_sk(sk: str) -> tuple[str, str]:
    """The bucket label and the value of a cell's sort key."""
    bucket, _, value = sk.partition("#")
    return bucket, value


def bucket_range(first: str, last: str) -> tuple[str, str]:
    """Sort-key bounds for labels first..last: ``$`` sorts right after ``#``, so ``<last>$`` is
    above every ``<last>#<value>``."""
    return f"{first}#", f"{last}$"


def applied_marker_key(request_id: str) -> dict[str, str]:
    return {"pk": f"APPLIED#{request_id}", "sk": "#"}


def last_used_pk(account_id: str) -> str:
    return f"{account_id}#last-used"


def last_used_key(account_id: str, key_id: str) -> dict[str, str]:
    return {"pk": last_used_pk(account_id), "sk": key_id}


def intermediate_key(account_id: str) -> dict[str, str]:
    return {"pk": f"{account_id}#intermediate", "sk": "#"}
