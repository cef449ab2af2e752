"""The fault matrix in CI: every kind of failure, upstream and in AWS, a few requests each, from
several clients at once; the ledger, the counters and the rollups must still be exact
(devstack/fault_matrix.py; bench/fault_matrix.py runs the same at 1,000 requests a kind)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.fault_matrix import KINDS, STACK_ENV, FaultMatrix, Kind
from tests.e2e.conftest import launched

pytestmark = pytest.mark.e2e

REQUESTS_PER_KIND = 8


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultMatrix]:
    """A stack of its own: AWS behind the fault gate, stream batches delivered twice, and waits
    on the provider short enough to time out in a test."""
    with launched(
        tmp_path_factory.mktemp("faults"), token_latency_ms=2, first_token_latency_ms=5, env=STACK_ENV
    ) as stack:
        running = FaultMatrix(stack.info)
        yield running
        running.close()


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
def test_each_kind_of_failure_answers_the_client_and_loses_or_doubles_no_record(matrix, kind: Kind):
    result = matrix.run(kind, REQUESTS_PER_KIND)

    # The fault struck every request (an outage: every call while it lasted), and the client heard it
    if kind.upstream or kind.aws:
        assert result.struck >= REQUESTS_PER_KIND * (kind.aws.times if kind.aws else 1)
    elif kind.aws_outage:
        assert result.struck >= REQUESTS_PER_KIND
    assert result.wrong_answers == []
    assert (result.lost, result.doubled) == (0, 0)
    assert result.records == (result.served if kind.reaches_upstream else 0)
    if kind.reaches_upstream:
        assert result.served == REQUESTS_PER_KIND


def test_an_export_whose_worker_dies_mid_upload_is_finished_by_the_next_with_each_row_once(matrix):
    assert matrix.export_after_a_failed_upload() == []


def test_after_every_failure_the_counters_and_the_rollups_equal_the_ledger(matrix):
    # Runs after the kinds above (file order): the books of all of them together, with every
    # stream batch delivered twice to the aggregator
    assert matrix.request_ids, "run the kinds first"
    assert matrix.books() == []
