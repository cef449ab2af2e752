"""Exports: jobs queued by ``/api/exports`` and run by ExportFunction — the ledger paged into a CSV
of requests, rollups into an activity CSV or a PDF report — written to S3 and handed out as
presigned URLs."""
