"""``/api/exports``: start an export job, then follow it to a presigned download URL."""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.config import get_api_settings
from meterway.errors import NotFound, StorageError
from meterway.handlers import deps
from meterway.handlers.api_usage import checked_key
from meterway.logic.exports import ExportCreate, check_retention, new_job
from meterway.logic.keys import ApiKey, utc_iso
from meterway.logic.windows import parse_window

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
    filename: str
    url: str | None = Field(default=None, description="Presigned GET URL, once succeeded")
    expires_at: str | None = Field(default=None, description="When the URL stops working (UTC)")
    error: str | None = None
    start: str
    end: str
    created_at: str
    updated_at: str


def admin() -> ApiKey:
    key: ApiKey = router.context["admin"]
    return key


@router.post("/api/exports", summary="Start an export job (CSV of requests or activity, or a PDF report)")
def post_export(body: ExportCreate) -> Response[ExportAccepted]:
    account = admin().account_id
    now = deps.now()
    window = parse_window(body.start, body.end, now, from_rollups=body.kind != "requests")
    check_retention(window, now, get_api_settings().ledger_retention_days)
    checked_key(account, body.key)
    job = new_job(account, body, window, now)
    deps.export_jobs().create(job)
    try:
        deps.export_queue().send({"job_id": job["job_id"]})
    except StorageError:
        attempt = deps.export_jobs().claim(job["job_id"], utc_iso(now))
        if attempt:
            deps.export_jobs().finish(
                job["job_id"], attempt, {"status": "failed", "error": "The job could not be queued."}
            )
        raise
    accepted = ExportAccepted(id=job["job_id"], status=job["status"], filename=job["filename"])
    return Response(202, content_types.APPLICATION_JSON, accepted)


@router.get("/api/exports/<job_id>", summary="An export job's status; a download URL once it succeeded")
def get_export(job_id: str) -> ExportStatus:
    job = deps.export_jobs().get(job_id) if job_id.startswith("exp_") and len(job_id) <= 64 else None
    if job is None or job["account_id"] != admin().account_id:
        raise NotFound(f"No export '{job_id}' in this account.", code="export_not_found")
    # The item's own expires_at is the table's TTL; the API's is the download URL's.
    status = ExportStatus.model_validate({**job, "id": job_id, "error": job.get("error"), "expires_at": None})
    if job["status"] == "succeeded":
        ttl = get_api_settings().export_url_ttl_seconds
        status.url = deps.export_files().download_url(job["object_key"], job["filename"], ttl)
        status.expires_at = utc_iso(deps.now() + timedelta(seconds=ttl))
    return status
