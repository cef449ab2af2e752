"""Schemathesis checks for the management API's contract test (loaded through ``SCHEMATHESIS_HOOKS``).

``positive_data_acceptance`` counts any 400 on schema-valid input as a failure. A few rules of the
API cannot be written in OpenAPI, so a schema-valid request may break them; a 400 is accepted
only when its error ``code`` names one of them, and every other 400 on valid input still fails:

- ``invalid_window``: ``end`` after ``start``, a window of at most 50 years, minute precision only
  for the last 8 days (older windows start and end on whole hours), an export not older than the
  ledger's retention. Each compares two fields, or a field with the server's clock.
- ``invalid_valid_until``: an expiry in the future, compared with the server's clock.
- ``invalid_filter``: ``/api/usage`` takes one of ``key``, ``user`` and ``app`` (the rollups keep
  no row of two together): a rule between query parameters, which OpenAPI does not state.
- ``invalid_cursor``: a cursor is opaque, and valid only for the query that returned it.
- ``own_key``: an admin key cannot disable or delete itself; which key is the caller's is not in the
  request's schema.
- ``admin_key``: admin keys carry no limits or expiry and are not rotated; the kind is the stored
  key's, not the request's.
- ``member_disabled``: a key for, or enabling a key of, a member that is disabled: stored state.
- ``too_many_secrets``: a key with ten old secrets in overlap is rotated with ``overlap_seconds``
  0: stored state.
"""

from __future__ import annotations

import json

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

CROSS_FIELD_CODES = frozenset(
    {
        "invalid_window",
        "invalid_valid_until",
        "invalid_filter",
        "invalid_cursor",
        "own_key",
        "admin_key",
        "member_disabled",
        "too_many_secrets",
    }
)


def _error_code(text: str) -> object:
    try:
        return json.loads(text)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


@schemathesis.check
def positive_data_acceptance_but_cross_field_rules(ctx, response, case) -> bool | None:  # type: ignore[no-untyped-def]
    """``positive_data_acceptance``, but for a 400 whose code names a rule OpenAPI cannot state."""
    if response.status_code == 400 and _error_code(response.text) in CROSS_FIELD_CODES:
        return None
    return positive_data_acceptance(ctx, response, case)
