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
import shutil
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
# The module:attribute uvicorn serves, on the last line of a Web Adapter start script (run.sh), and
# the server module that line runs (`python3 -m uvicorn`).
_ASGI_APP = re.compile(r"\s(\S+):(\w+)\s*$")
_SERVER = re.compile(r"\s-m\s+(\S+)")


def handlers(template_path: Path = TEMPLATE) -> dict[str, str]:
    """`{logical id: Handler}` of every function in the template."""
    resources = load_template(template_path)["Resources"]
    return {lid: res["Properties"]["Handler"] for lid, res in resources.items() if res["Type"] == FUNCTION}


def entry_point(handler: str, code_dir: Path) -> tuple[str, str]:
    """(module, attribute) that `handler` runs: `package.module.function` names them, and a start
    script (the proxy's run.sh, run by the Lambda Web Adapter) ends by serving an ASGI app."""
    if handler.endswith(".sh"):
        match = _ASGI_APP.search(_start_line(handler, code_dir))
        if not match:
            raise ValueError(f"{handler} does not end by serving a module:app")
        return match.group(1), match.group(2)
    module, _, attribute = handler.rpartition(".")
    return module, attribute


def start_modules(handler: str, code_dir: Path) -> list[str]:
    """What a cold start imports before the function can take a request: the handler's module, and
    first, for a start script, the server it runs as ``python3 -m`` (uvicorn)."""
    module, _ = entry_point(handler, code_dir)
    server = _SERVER.search(_start_line(handler, code_dir)) if handler.endswith(".sh") else None
    return [server.group(1), module] if server else [module]


def _start_line(script: str, code_dir: Path) -> str:
    return (code_dir / script).read_text().strip().splitlines()[-1]


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


HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def version_of(python: str) -> str:
    """`3.12` for a Python 3.12 interpreter."""
    return run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()


def build_function_code(function: str, target: Path, python: str = sys.executable) -> Path:
    """A function's code built by functions/Makefile with `python`, as `sam build` builds it when
    `python` is the runtime's: with its bytecode."""
    target.mkdir(parents=True, exist_ok=True)
    make = ["make", "--no-print-directory", "-C", str(ROOT / "functions"), f"build-{function}"]
    run([*make, f"ARTIFACTS_DIR={target}", f"PYTHON={python}", f"RUNTIME_PYTHON_VERSION={version_of(python)}"])
    return target


def build_host_layer(target: Path, python: str = sys.executable) -> Path:
    """The DependenciesLayer built for this machine's CPU and `python` by layers/Makefile, so with
    its bytecode; returns its python/ directory (Lambda's /opt/python)."""
    run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT / "layers"),
            "build-DependenciesLayer",
            f"ARTIFACTS_DIR={target}",
            f"PYTHON={python}",
            f"LAYER_ARCH={platform.machine()}",
            f"LAYER_PYTHON_VERSION={version_of(python)}",
        ]
    )
    return target / "python"


def install_runtime_boto3(target: Path, python: str = sys.executable) -> Path:
    """boto3 and botocore as the Lambda runtime provides them (outside the layer), at the versions
    the tests run with."""
    pins = [f"boto3=={version('boto3')}", f"botocore=={version('botocore')}"]
    pip = [python, "-m", "pip", "install", "--quiet", "--no-compile", "--root-user-action=ignore"]
    run([*pip, "--target", str(target), *pins])
    return target


@dataclass(frozen=True)
class CleanPython:
    """An interpreter that sees the standard library and what Lambda puts on sys.path, nothing else."""

    layer: Path
    # The same layer without its bytecode, as a build by another Python than the runtime's ships it.
    layer_sources: Path
    runtime: Path
    # Holds `python3`: this interpreter, started clean, for scripts that call python3 (run.sh).
    bin_dir: Path
    executable: str = sys.executable

    @classmethod
    def prepare(cls, workdir: Path, python: str = sys.executable) -> CleanPython:
        """The host layer (with and without bytecode), the runtime's boto3 and the `python3` script
        for `python` (by default this interpreter), made under `workdir`."""
        bin_dir = workdir / "bin"
        bin_dir.mkdir(parents=True)
        python3 = bin_dir / "python3"
        python3.write_text(f'#!/bin/sh\nexec "{python}" -S "$@"\n')
        python3.chmod(0o755)
        layer = build_host_layer(workdir / "layer", python)
        sources = shutil.copytree(
            layer, workdir / "layer-sources" / "python", ignore=shutil.ignore_patterns("__pycache__")
        )
        return cls(layer, sources, install_runtime_boto3(workdir / "runtime", python), bin_dir, python)

    @property
    def command(self) -> list[str]:
        # -S: no site module, so no site-packages of any venv or system Python; PYTHONPATH still counts.
        return [self.executable, "-S"]

    def environment(self, code_dir: Path, *, bytecode: bool = True) -> dict[str, str]:
        """Lambda's search order: the function's code (/var/task), the layer (/opt/python; without
        its bytecode if not `bytecode`), then the runtime's own boto3. No bytecode is written:
        Lambda's code and layer are read-only."""
        layer = self.layer if bytecode else self.layer_sources
        return {
            "PATH": os.pathsep.join((str(self.bin_dir), os.environ.get("PATH", "/usr/bin:/bin"))),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(str(path) for path in (code_dir, layer, self.runtime)),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def import_seconds(self, code_dir: Path, modules: list[str], *, bytecode: bool) -> tuple[float, float]:
        """(wall, CPU) seconds of importing `modules` in a fresh interpreter: from the bytecode
        `code_dir` and the layer carry, or (not `bytecode`) compiling every source of the layer, and
        of `code_dir`, which should then carry none, as a cold start on Lambda does. On an idle
        machine the two are about the same; on a loaded one the CPU time is the steadier."""
        imports = "; ".join(f"import {module}" for module in modules)
        clocks = "time.perf_counter() - t, time.process_time() - c"
        code = f"import time; t, c = time.perf_counter(), time.process_time(); {imports}; print({clocks})"
        wall, cpu = run(
            [*self.command, "-c", code], env=self.environment(code_dir, bytecode=bytecode), cwd=code_dir
        ).split()
        return float(wall), float(cpu)
