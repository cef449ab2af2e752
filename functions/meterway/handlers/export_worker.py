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

from meterway.handlers import deps
from meterway.logic.run_export import ExportDeps, run_job
from meterway.observability import logger

MAX_RECEIVES = 3  # the ExportQueue's redrive maxReceiveCount
processor = BatchProcessor(event_type=EventType.SQS)


def export_deps() -> ExportDeps:
    return ExportDeps(
        jobs=deps.export_jobs(),
        ledger=deps.ledger_store(),
        rollups=deps.rollup_store(),
        keys=deps.key_store(),
        files=deps.export_files(),
        clock=deps.now,
    )


def run_record(record: SQSRecord) -> None:
    job_id = json.loads(record.body)["job_id"]
    final = int(record.attributes.approximate_receive_count or 1) >= MAX_RECEIVES
    outcome = run_job(job_id, export_deps(), final_attempt=final)
    logger.info("export job ran", extra={"job_id": job_id, "outcome": outcome})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=run_record, processor=processor, context=context)
