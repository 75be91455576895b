"""Size check for issue 17: modules over 400 lines and functions over 60 lines.

Walks the product folders (``edge/``, ``server/``, ``model_export/``, ``tools/`` by default),
counts physical lines per module and the line span of every function or method
(``def`` line to its last line, decorators excluded), and prints the counts and the lists,
largest first. A function may state why it is longer in a comment ``# size: <reason>`` inside
it (issue 17: "no function over ~60 lines without a reason stated in it"); those are listed
apart and not counted.

    python tools/code_size.py [--max-module 400] [--max-function 60] [FOLDER ...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = ("edge", "server", "model_export", "tools")


def python_files(folders: list[str]) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        base = ROOT / folder
        out.extend(p for p in sorted(base.rglob("*.py")) if "__pycache__" not in p.parts)
    return out


def function_spans(tree: ast.AST, prefix: str = ""):
    """Yield (qualified name, first line, line count) for every function, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node.lineno, node.end_lineno - node.lineno + 1
            yield from function_spans(node, name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from function_spans(node, f"{prefix}{node.name}.")
        else:
            yield from function_spans(node, prefix)


def measure(folders: list[str], max_module: int, max_function: int):
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    reasoned: list[tuple[int, str]] = []
    for path in python_files(folders):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        src = text.splitlines()
        if len(src) > max_module:
            modules.append((len(src), rel))
        for name, lineno, count in function_spans(ast.parse(text, filename=rel)):
            if count > max_function:
                reason = next((ln.split("# size:", 1)[1].strip() for ln in src[lineno - 1 : lineno - 1 + count]
                               if ln.strip().startswith("# size:")), None)  # fmt: skip
                where = f"{rel}:{lineno} {name}"
                if reason:
                    reasoned.append((count, f"{where} ({reason})"))
                else:
                    functions.append((count, where))
    for found in (modules, functions, reasoned):
        found.sort(key=lambda t: (-t[0], t[1]))
    return modules, functions, reasoned


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", default=list(DEFAULT_FOLDERS))
    ap.add_argument("--max-module", type=int, default=400)
    ap.add_argument("--max-function", type=int, default=60)
    args = ap.parse_args(argv)
    modules, functions, reasoned = measure(args.folders, args.max_module, args.max_function)
    print(f"modules over {args.max_module} lines: {len(modules)}")
    for lines, rel in modules:
        print(f"  {lines:5d}  {rel}")
    print(f"functions over {args.max_function} lines: {len(functions)}")
    for lines, where in functions:
        print(f"  {lines:5d}  {where}")
    if reasoned:
        print(f"functions over {args.max_function} lines with a stated reason (# size:): {len(reasoned)}")
        for lines, where in reasoned:
            print(f"  {lines:5d}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
