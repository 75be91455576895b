"""The folders are the architecture (docs/architecture.md); these rules keep it so.

- ``edge/core`` (records, ports, the pure pipeline) imports no adapter, no app, no I/O library
  (of the kit only its plain-data modules);
- ``edge/contract`` and ``edge/kit`` (shared with the server) import nothing else of ``edge``
  (the kit may use the contract);
- adapters import core, contract and kit, never the app;
- the server imports only ``edge.contract`` and ``edge.kit`` from ``edge``;
- importing ``edge`` or ``edge.contract`` has no side effect on BLAS threading (the server
  clusters with every core).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(folder: str) -> dict[str, set[str]]:
    """Module file -> the absolute modules it imports (relative imports resolved)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT)
        package = list(rel.with_suffix("").parts)[:-1]  # a module's package; __init__'s is its folder
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    names.add(".".join([*base, node.module] if node.module else base))
                else:
                    names.add(node.module or "")
        out[str(rel)] = names
    return out


def offenders(folder: str, allowed) -> list[str]:
    bad = []
    for module, names in imports_of(folder).items():
        for n in sorted(names):
            if not allowed(n):
                bad.append(f"{module} imports {n}")
    return bad


def _edge_part(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "edge":
        return None
    return parts[1] if len(parts) > 1 else ""


#: kit modules that are plain data or arithmetic, which the core may use
PURE_KIT = {"edge.kit.broker", "edge.kit.units"}
IO_LIBS = {
    "sqlite3",
    "sqlite_utils",
    "paho",
    "pyaudio",
    "ai_edge_litert",
    "tflite_runtime",
    "tensorflow",
    "socket",
}


def test_core_imports_no_adapter_app_or_io_library():
    def allowed(n: str) -> bool:
        if n.split(".")[0] in IO_LIBS:
            return False
        part = _edge_part(n)
        return part is None or part in ("core", "contract") or n in PURE_KIT

    assert offenders("edge/core", allowed) == []


@pytest.mark.parametrize("folder", ["edge/contract", "edge/kit"])
def test_shared_packages_import_no_recorder_code(folder):
    def allowed(n: str) -> bool:
        part = _edge_part(n)
        return part is None or part in ("contract", "kit")

    assert offenders(folder, allowed) == []


def test_adapters_never_import_the_app():
    def allowed(n: str) -> bool:
        return _edge_part(n) != "app"

    assert offenders("edge/adapters", allowed) == []


def test_server_imports_only_the_contract_and_the_kit_from_edge():
    def allowed(n: str) -> bool:
        part = _edge_part(n)
        return part is None or part in ("contract", "kit")

    assert offenders("server", allowed) == []


def test_importing_the_contract_leaves_blas_threading_alone():
    code = "import os, edge, edge.contract, edge.kit.sqlite; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
