"""What the export routes of the management API are handed with each request (see
``meterway.management_api``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, Protocol, cast

from meterway.accounts.dal.key_admin_store import KeyAdminStore
from meterway.analytics.dal.rollup_store import RollupStore
from meterway.core.settings import ApiSettings
from meterway.exports.dal.export_files import FileStore
from meterway.exports.dal.export_jobs import ExportJobStore
from meterway.exports.dal.job_queue import JobQueue


class ExportsContext(Protocol):
    """Read-only: the management API builds it once per process."""

    @property
    def settings(self) -> ApiSettings: ...

    @property
    def key_admin(self) -> KeyAdminStore: ...

    @property
    def export_jobs(self) -> ExportJobStore: ...

    @property
    def export_files(self) -> FileStore: ...

    @property
    def export_queue(self) -> JobQueue: ...

    @property
    def rollups(self) -> RollupStore: ...

    @property
    def models(self) -> Collection[str]:
        """The catalog's model ids."""

    @property
    def clock(self) -> Callable[[], datetime]: ...


def context_of(router: Any) -> ExportsContext:
    return cast(ExportsContext, router.context["exports"])
