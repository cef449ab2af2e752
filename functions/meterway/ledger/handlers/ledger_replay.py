"""Drains the spill queue into the ledger (Powertools batch processing, partial failures).

A record lands here only when the proxy could not write it; the same conditional put makes a
replay of an already-written record a no-op, so redelivery never counts a request twice. Its
counters travel in it, for the aggregator to add once the record is in the ledger.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.core.container import provided
from meterway.core.observability import logger
from meterway.core.settings import LedgerReplaySettings, load_settings
from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerStore
from meterway.ledger.dal.spill_queue import decode_settlement

processor = BatchProcessor(event_type=EventType.SQS)


@provided
def ledger_store() -> LedgerStore:
    settings = load_settings(LedgerReplaySettings)
    return DynamoLedgerStore(settings.ledger_table)


def replay_record(record: SQSRecord) -> None:
    item = decode_settlement(record.body)
    written = ledger_store().put(item)
    logger.info("spilled record replayed", extra={"request_id": item["request_id"], "written": written})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    ledger_store()  # a missing setting fails the invocation before any record is touched
    return process_partial_response(event=event, record_handler=replay_record, processor=processor, context=context)
