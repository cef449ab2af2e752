"""Ledger stream → rollups (Powertools batch processing, partial batch failures).

Only INSERTs count: the event source filter lets nothing else through, and the handler checks
again, so a TTL deletion or a modification can never change a rollup.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.dal.aws import deserialize
from meterway.handlers.deps import rollup_store
from meterway.logic.rollups import rollup_updates
from meterway.observability import logger

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def aggregate_record(record: DynamoDBRecord) -> None:
    if record.raw_event.get("eventName") != "INSERT":
        return
    item = deserialize(record.raw_event["dynamodb"]["NewImage"])
    if not rollup_store().apply(item["request_id"], rollup_updates(item)):
        logger.info("record already counted", extra={"request_id": item["request_id"]})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=aggregate_record, processor=processor, context=context)
