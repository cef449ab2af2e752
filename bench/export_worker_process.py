"""One warm export worker, as ``bench/export_throughput.py`` starts several: the local stack's
stand-in for the ExportFunction's event source mapping (``devstack.workers.SqsPoller`` on the
export queue, one message at a time) calling the real ``export_worker.handler``, until SIGTERM.

Its memory is meant to be the function's: the development venv has two packages that botocore
loads when it finds them and that the Lambda runtime does not have (awscrt, the CRT's native
library, and pyOpenSSL with cryptography): they are hidden from this process, so botocore takes
the runtime's own code paths. Everything else is the venv's (powertools, pydantic, boto3...).

It imports the handler and makes its store's clients before saying it is ready, and when stopped
writes its peak RSS (VmHWM from /proc), its RSS when ready, the CPU time it spent after that,
and what it was invoked for; and the same of the child processes it made pages into rows in
(``MW_EXPORT_ROW_PROCESSES``): their CPU time and the largest one's peak RSS.

    python bench/export_worker_process.py --ready FILE --result FILE
"""

from __future__ import annotations

import sys

# Absent from the Lambda runtime: hide them before botocore looks (see the docstring).
sys.modules["awscrt"] = None  # type: ignore[assignment]
sys.modules["OpenSSL"] = None  # type: ignore[assignment]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS: now, VmHWM: the peak so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def children_cpu_seconds() -> float:
    """CPU time of the child processes ended and waited for (ForkedMap joins its children)."""
    times = os.times()
    return times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()

    from devstack.workers import SqsPoller
    from meterway.exports.handlers import export_worker

    deps = export_worker.export_deps()
    for store in (deps.jobs, deps.rollups, deps.files, deps.queue):
        _ = store.client  # type: ignore[attr-defined]  # each store's client, made now
    _ = deps.ledger.wire_client  # type: ignore[attr-defined]
    invocations: Counter[str] = Counter()

    def counted(event: dict[str, Any], context: Any) -> Any:
        invocations["slice" if '"slice"' in event["Records"][0]["body"] else "job"] += 1
        return export_worker.handler(event, context)

    poller = SqsPoller(os.environ["MW_EXPORT_QUEUE_URL"], counted, "ExportFunction", batch_size=1, retry_delay_s=1)
    signal.signal(signal.SIGTERM, lambda *_: poller.stop())
    rss_ready, cpu_ready, children_ready = status_kib("VmRSS"), cpu_seconds(), children_cpu_seconds()
    args.ready.write_text("ready")
    poller.run()
    report = {
        "rss_ready_kib": rss_ready,
        "peak_rss_kib": status_kib("VmHWM"),
        "cpu_s": cpu_seconds() - cpu_ready,
        "children_cpu_s": children_cpu_seconds() - children_ready,
        # ru_maxrss: KiB on Linux, the largest of the children waited for
        "children_peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "invocations": dict(invocations),
    }
    args.result.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
