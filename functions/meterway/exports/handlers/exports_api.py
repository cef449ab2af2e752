"""``/api/exports``: start an export job, then follow it to a presigned download URL."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.accounts.handlers.api_context import admin_of
from meterway.accounts.logic.manage_keys import key_filter
from meterway.analytics.logic.model_filter import model_filter
from meterway.analytics.logic.windows import parse_window
from meterway.core.api_responses import JSON_BODY, api_responses
from meterway.core.clock import utc_iso
from meterway.core.errors import NotFound
from meterway.exports.handlers.api_context import context_of
from meterway.exports.logic.export_jobs import (
    ExportBody,
    check_retention,
    export_request,
    rows_written,
    start_export,
)

router = APIGatewayRouter()


class ExportAccepted(BaseModel):
    id: str
    status: str
    filename: str


class ExportStatus(BaseModel):
    id: str
    kind: str
    format: str
    status: str = Field(description="queued | running | succeeded | failed")
    rows: int = Field(description="Rows written so far (requests for a PDF report)")
    total_rows: int | None = Field(
        default=None, description="The rows the job will write, once it knows (activity exports and PDF reports)"
    )
    filename: str
    url: str | None = Field(default=None, description="Presigned GET URL, once succeeded")
    expires_at: str | None = Field(default=None, description="When the URL stops working (UTC)")
    error: str | None = None
    start: str
    end: str
    created_at: str
    updated_at: str


@router.post(
    "/api/exports",
    summary="Start an export job (CSV of requests or activity, or a PDF report)",
    responses=api_responses(202, *JSON_BODY, NotFound),
)
def post_export(export: Annotated[ExportBody, Body()]) -> Response[ExportAccepted]:
    deps, account = context_of(router), admin_of(router).account_id
    body = export_request(export)
    now = deps.clock()
    window = parse_window(body.start, body.end, now, from_rollups=body.kind != "requests")
    check_retention(window, now, deps.settings.ledger_retention_days)
    key_filter(deps.key_admin, account, body.key)
    model_filter(deps.models, deps.rollups, account, body.model)
    job = start_export(deps.export_jobs, deps.export_queue, account, body, window, now)
    accepted = ExportAccepted(id=job["job_id"], status=job["status"], filename=job["filename"])
    return Response(202, content_types.APPLICATION_JSON, accepted)


@router.get(
    "/api/exports/<job_id>",
    summary="An export job's status; a download URL once it succeeded",
    responses=api_responses(200, NotFound),
)
def get_export(job_id: str) -> ExportStatus:
    deps = context_of(router)
    job = deps.export_jobs.get(job_id) if job_id.startswith("exp_") and len(job_id) <= 64 else None
    if job is None or job["account_id"] != admin_of(router).account_id:
        raise NotFound(f"No export '{job_id}' in this account.", code="export_not_found")
    # The item's own expires_at is the table's TTL; the API's is the download URL's.
    status = ExportStatus.model_validate(
        {**job, "id": job_id, "rows": rows_written(job), "error": job.get("error"), "expires_at": None}
    )
    if job["status"] == "succeeded":
        ttl = deps.settings.export_url_ttl_seconds
        status.url = deps.export_files.download_url(job["object_key"], job["filename"], ttl)
        status.expires_at = utc_iso(deps.clock() + timedelta(seconds=ttl))
    return status
