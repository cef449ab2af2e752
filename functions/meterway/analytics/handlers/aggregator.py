"""Ledger stream → rollups and the keys' and accounts' counters, with partial batch failures
(Powertools batch processing).

The batch's records are merged into as few transactions as fit (many requests of one minute
share their rollup items), each record in two parts (its account's shared rows, its key's rows),
each transaction carrying a marker per part so that a redelivered record is never counted twice.
Records of which a part's transaction failed are reported to Powertools, which answers Lambda
with the partial failure so that the stream is retried from the first of them.

Only INSERTs count: the event source filter lets nothing else through and this checks again, so
a TTL deletion or a modification can never change a rollup. A failed attempt's record (before a
fallback) is not counted: its request is, by its own record.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.analytics.dal.rollup_store import DynamoRollupStore, RollupStore
from meterway.analytics.logic.rollups import contribution, count_records, counted
from meterway.analytics.models import Contribution
from meterway.core.aws import deserialize
from meterway.core.container import provided
from meterway.core.errors import StorageError
from meterway.core.observability import logger
from meterway.core.settings import AggregatorSettings, load_settings

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@provided
def rollup_store() -> RollupStore:
    settings = load_settings(AggregatorSettings)
    return DynamoRollupStore(settings.rollups_table, counters_table=settings.keys_table)


def record_contribution(record: dict[str, Any]) -> Contribution | None:
    if record.get("eventName") != "INSERT":
        return None
    item = deserialize(record["dynamodb"]["NewImage"])
    return contribution(item) if counted(item) else None


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = event.get("Records", [])
    by_sequence = {record["dynamodb"]["SequenceNumber"]: record_contribution(record) for record in records}
    outcome = count_records(rollup_store(), [c for c in by_sequence.values() if c is not None])
    if outcome.duplicates:
        logger.info("records already counted", extra={"count": len(outcome.duplicates)})

    def report_record(record: DynamoDBRecord) -> None:
        counted = by_sequence.get(record.dynamodb.sequence_number if record.dynamodb else "")
        if counted is not None and counted.request_id in outcome.failed:
            raise StorageError(f"rollups of {counted.request_id} not written")

    return process_partial_response(event=event, record_handler=report_record, processor=processor, context=context)
