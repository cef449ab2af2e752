"""Drains the spill queue into the ledger (Powertools batch processing, partial failures).

A record lands here only when the proxy could not write it; the same conditional put makes a
replay of an already-written record a no-op, so redelivery never counts a request twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.dal.ledger_store import decode_record
from meterway.handlers import deps
from meterway.observability import logger

processor = BatchProcessor(event_type=EventType.SQS)


def replay_record(record: SQSRecord) -> None:
    item, counters = decode_record(record.body)
    written = deps.ledger_store().settle(item, counters)
    logger.info("spilled record replayed", extra={"request_id": item["request_id"], "written": written})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=replay_record, processor=processor, context=context)
