"""ExportFunction: runs export jobs taken from the ExportQueue, one message per invocation: a job
(``{"job_id"}``), or one slice of a fanned-out request export (``{"job_id", "attempt", "slice"}``).

A failed attempt is reported as a batch item failure so SQS delivers it again after the visibility
timeout; the queue's third delivery is the last (maxReceiveCount 3), and that attempt marks the
job ``failed`` with its reason instead of retrying.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.core.container import provided
from meterway.core.observability import logger
from meterway.core.settings import ExportSettings, load_settings
from meterway.exports.dal.export_files import S3Files
from meterway.exports.dal.export_jobs import DynamoExportJobStore
from meterway.exports.dal.job_queue import SqsJobQueue
from meterway.exports.logic.attempts import ExportDeps
from meterway.exports.logic.run_export import run_message
from meterway.ledger.dal.ledger_store import DynamoLedgerStore

MAX_RECEIVES = 3  # the ExportQueue's redrive maxReceiveCount
processor = BatchProcessor(event_type=EventType.SQS)


@provided
def export_deps() -> ExportDeps:
    settings = load_settings(ExportSettings)
    return ExportDeps(
        jobs=DynamoExportJobStore(settings.export_jobs_table),
        ledger=DynamoLedgerStore(settings.ledger_table),
        rollups=DynamoRollupStore(settings.rollups_table),
        keys=DynamoKeyStore(settings.keys_table),
        files=S3Files(settings.export_bucket, settings.s3_addressing_style),
        queue=SqsJobQueue(settings.export_queue_url),
        slice_rows=settings.export_slice_rows,
        row_processes=settings.export_row_processes,
    )


def run_record(record: SQSRecord) -> None:
    message = json.loads(record.body)
    final = int(record.attributes.approximate_receive_count or 1) >= MAX_RECEIVES
    outcome = run_message(message, export_deps(), final_attempt=final)
    logger.info(
        "export job ran", extra={"job_id": message["job_id"], "slice": message.get("slice"), "outcome": outcome}
    )


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    export_deps()  # a missing setting fails the invocation before any job is claimed
    return process_partial_response(event=event, record_handler=run_record, processor=processor, context=context)
