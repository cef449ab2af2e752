"""ExportFunction: runs export jobs taken from the ExportQueue, one message per invocation.

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
from meterway.exports.logic.run_export import ExportDeps, run_job
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
    )


def run_record(record: SQSRecord) -> None:
    job_id = json.loads(record.body)["job_id"]
    final = int(record.attributes.approximate_receive_count or 1) >= MAX_RECEIVES
    outcome = run_job(job_id, export_deps(), final_attempt=final)
    logger.info("export job ran", extra={"job_id": job_id, "outcome": outcome})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    export_deps()  # a missing setting fails the invocation before any job is claimed
    return process_partial_response(event=event, record_handler=run_record, processor=processor, context=context)
