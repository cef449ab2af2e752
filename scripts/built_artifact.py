"""The artifact `sam build` makes, run on this machine the way Lambda runs it.

The real DependenciesLayer holds arm64 wheels for Python 3.12, which cannot load here. So the same
layer is built again, from the same recipe (layers/Makefile) and the same layers/requirements.txt,
for this machine's CPU and Python. boto3 is not in the layer because the Lambda runtime provides
it; `install_runtime_boto3` stands in for the runtime's copy. A clean interpreter (`python -S`: no
site-packages, so nothing of the development venv) then sees the function's built code, the layer
and that boto3, in Lambda's order.

Used by the artifact test (tests/build/) and the build report (bench/build_report.py).
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from devstack.aws_resources import load_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
FUNCTION = "AWS::Serverless::Function"
# Lambda's architecture names, as the CPU names of manylinux wheels and `platform.machine()`.
WHEEL_CPU = {"arm64": "aarch64", "x86_64": "x86_64"}
# The module:attribute uvicorn serves, on the last line of a Web Adapter start script (run.sh).
_ASGI_APP = re.compile(r"\s(\S+):(\w+)\s*$")


def handlers(template_path: Path = TEMPLATE) -> dict[str, str]:
    """`{logical id: Handler}` of every function in the template."""
    resources = load_template(template_path)["Resources"]
    return {lid: res["Properties"]["Handler"] for lid, res in resources.items() if res["Type"] == FUNCTION}


def entry_point(handler: str, code_dir: Path) -> tuple[str, str]:
    """(module, attribute) that `handler` runs: `package.module.function` names them, and a start
    script (the proxy's run.sh, run by the Lambda Web Adapter) ends by serving an ASGI app."""
    if handler.endswith(".sh"):
        match = _ASGI_APP.search((code_dir / handler).read_text().strip().splitlines()[-1])
        if not match:
            raise ValueError(f"{handler} does not end by serving a module:app")
        return match.group(1), match.group(2)
    module, _, attribute = handler.rpartition(".")
    return module, attribute


def run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a build step or a measurement; its output is returned, and shown only when it fails."""
    # The commands are this module's own: make, pip and the interpreter running it.
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def sam_build(build_dir: Path) -> None:
    """`make build` into `build_dir`: the real `sam build`, run the way a user runs it."""
    run(["make", "--no-print-directory", "-C", str(ROOT), "build", f"SAM_BUILD_DIR={build_dir}"])


def build_host_layer(target: Path) -> Path:
    """The DependenciesLayer built for this machine's CPU and Python by layers/Makefile; returns its
    python/ directory (Lambda's /opt/python)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT / "layers"),
            "build-DependenciesLayer",
            f"ARTIFACTS_DIR={target}",
            f"PYTHON={sys.executable}",
            f"LAYER_ARCH={platform.machine()}",
            f"LAYER_PYTHON_VERSION={python}",
        ]
    )
    return target / "python"


def install_runtime_boto3(target: Path) -> Path:
    """boto3 and botocore as the Lambda runtime provides them (outside the layer), at the versions
    the tests run with."""
    pins = [f"boto3=={version('boto3')}", f"botocore=={version('botocore')}"]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--root-user-action=ignore"]
    run([*pip, "--target", str(target), *pins])
    return target


@dataclass(frozen=True)
class CleanPython:
    """An interpreter that sees the standard library and what Lambda puts on sys.path, nothing else."""

    layer: Path
    runtime: Path
    # Holds `python3`: this interpreter, started clean, for scripts that call python3 (run.sh).
    bin_dir: Path

    @classmethod
    def prepare(cls, workdir: Path) -> CleanPython:
        """The host layer, the runtime's boto3 and the `python3` script, made under `workdir`."""
        bin_dir = workdir / "bin"
        bin_dir.mkdir(parents=True)
        python3 = bin_dir / "python3"
        python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
        python3.chmod(0o755)
        return cls(build_host_layer(workdir / "layer"), install_runtime_boto3(workdir / "runtime"), bin_dir)

    @property
    def command(self) -> list[str]:
        # -S: no site module, so no site-packages of any venv or system Python; PYTHONPATH still counts.
        return [sys.executable, "-S"]

    def environment(self, code_dir: Path) -> dict[str, str]:
        """Lambda's search order: the function's code (/var/task), the layer (/opt/python), then the
        runtime's own boto3. No bytecode is written: Lambda's code and layer are read-only."""
        return {
            "PATH": os.pathsep.join((str(self.bin_dir), os.environ.get("PATH", "/usr/bin:/bin"))),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(str(path) for path in (code_dir, self.layer, self.runtime)),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def import_seconds(self, code_dir: Path, module: str, *, runs: int, bytecode_cache: Path | None = None) -> float:
        """Median wall time of importing `module` in a fresh interpreter, over `runs` runs. Without a
        bytecode cache every run compiles the sources, as Lambda does on a cold start; with one, the
        first run fills it and the timed runs read it."""
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        env = self.environment(code_dir)
        if bytecode_cache:
            env = {**env, "PYTHONPYCACHEPREFIX": str(bytecode_cache)}
            env.pop("PYTHONDONTWRITEBYTECODE")
            run([*self.command, "-c", code], env=env, cwd=code_dir)
        times = [float(run([*self.command, "-c", code], env=env, cwd=code_dir)) for _ in range(runs)]
        return statistics.median(times)
