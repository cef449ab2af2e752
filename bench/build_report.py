"""Sizes and import times of the artifact `sam build` makes (README: "The deployed artifact").

    .venv/bin/python bench/build_report.py [--build-dir .aws-sam/build] [--rebuild] [--runs 7] [--function F]
                                           [--python python3.12]

`make build-report` runs it. It builds with `make build` when the build directory holds no build
(or with --rebuild), then prints a Markdown table, one row per function:
- its code, zipped (a deflated zip, as `sam deploy` uploads it) and unzipped;
- the DependenciesLayer, zipped and unzipped, the same for every function;
- code and layer unzipped together, against Lambda's limit on a function and its layers. The
  ProxyFunction's Lambda Web Adapter layer (AWS's own) comes on top and is not measured here;
- the median time of the imports a cold start makes before the function can take a request, over
  --runs fresh interpreters (scripts/built_artifact.py: the layer built for this machine, `python -S`
  with the function's code, the layer and the runtime's boto3 only): the handler's module, and for
  the proxy uvicorn first, which run.sh starts and which then imports the app. "without bytecode"
  compiles every source of the build's code and of the layer, as Lambda does when the build's
  Python was not the runtime's: Lambda cannot write bytecode. "with bytecode" imports the code as
  functions/Makefile builds it when its Python is the runtime's (here: --python's), with the layer's
  bytecode likewise. The two are timed in turn, run by run, so that the load of a shared machine
  weighs on both alike; each cell is the interpreters' CPU time, and their wall time after it, as
  the CPU time is the steadier of the two on a shared machine. --python picks the interpreter (by
  default this one): the runtime's version, where one is at hand.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from scripts.built_artifact import (  # noqa: E402
    CleanPython,
    build_function_code,
    handlers,
    run,
    sam_build,
    start_modules,
)

LAYER = "DependenciesLayer"
# What Lambda refuses beyond: "Unzipped size must be smaller than 262144000 bytes" (250 MiB), for a
# function's code and all its layers together.
UNZIPPED_LIMIT = 262_144_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class Size:
    zipped: int
    unzipped: int


def size_of(directory: Path) -> Size:
    """The directory as `sam deploy` uploads it (a deflated zip, in memory) and as Lambda unpacks it."""
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in files:
            zipped.write(path, path.relative_to(directory).as_posix())
    return Size(zipped=archive.tell(), unzipped=sum(path.stat().st_size for path in files))


@dataclass(frozen=True)
class Timing:
    """Medians over the runs, in ms."""

    cpu_ms: float
    wall_ms: float

    @classmethod
    def of(cls, runs: list[tuple[float, float]]) -> Timing:
        return cls(1000 * statistics.median(cpu for _, cpu in runs), 1000 * statistics.median(wall for wall, _ in runs))

    def __str__(self) -> str:
        return f"{self.cpu_ms:.0f} ms ({self.wall_ms:.0f})"


@dataclass(frozen=True)
class Row:
    function: str
    code: Size
    without_bytecode: Timing
    with_bytecode: Timing


def measure(
    build_dir: Path, python: CleanPython, runs: int, compiled_root: Path, only: list[str] | None = None
) -> list[Row]:
    rows = []
    for function, handler in sorted(handlers().items()):
        if only and function not in only:
            continue
        code_dir = build_dir / function
        # The build's code as it is, less any bytecode (a build by the runtime's Python has some)
        sources_dir = shutil.copytree(
            code_dir, compiled_root / "sources" / function, ignore=shutil.ignore_patterns("__pycache__")
        )
        compiled_dir = build_function_code(function, compiled_root / function, python.executable)
        modules = start_modules(handler, code_dir)
        without, with_ = [], []
        for _ in range(runs):
            without.append(python.import_seconds(sources_dir, modules, bytecode=False))
            with_.append(python.import_seconds(compiled_dir, modules, bytecode=True))
        rows.append(Row(function, size_of(code_dir), Timing.of(without), Timing.of(with_)))
    return rows


def mib(size: int) -> str:
    return f"{size / MIB:.2f} MiB"


def report(rows: list[Row], layer: Size, runs: int, python: str) -> str:
    lines = [
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{python}; imports (for the proxy: uvicorn, then the app): median of {runs} runs",
        "",
        "| function | code zipped | code unzipped | layer zipped | layer unzipped "
        "| code + layer unzipped (limit 250 MiB) | import CPU (wall), without bytecode | with bytecode |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        total = row.code.unzipped + layer.unzipped
        lines.append(
            f"| {row.function} | {mib(row.code.zipped)} | {mib(row.code.unzipped)} | {mib(layer.zipped)} "
            f"| {mib(layer.unzipped)} | {mib(total)} ({total / UNZIPPED_LIMIT:.0%}) "
            f"| {row.without_bytecode} | {row.with_bytecode} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--rebuild", action="store_true", help="run `make build` even if a build is there")
    parser.add_argument("--runs", type=int, default=7, help="interpreters started per import measurement")
    parser.add_argument("--function", action="append", help="only this function (ProxyFunction…); repeatable")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter to time imports with (the runtime's version if at hand)",
    )
    args = parser.parse_args()

    build_dir = args.build_dir.resolve()
    if args.rebuild or not (build_dir / "template.yaml").is_file():
        print(f"building into {build_dir} …", file=sys.stderr)
        sam_build(build_dir)
    with tempfile.TemporaryDirectory() as workdir:
        print("building the layer for this machine …", file=sys.stderr)
        python = CleanPython.prepare(Path(workdir), args.python)
        rows = measure(build_dir, python, args.runs, Path(workdir) / "compiled", args.function)
    version = run([args.python, "-c", "import platform; print(platform.python_version())"]).strip()
    print(report(rows, size_of(build_dir / LAYER), args.runs, version))


if __name__ == "__main__":
    main()
