"""Print the import graph by folder: which top-level folders (edge/core, edge/adapters/store, server/web,
...) import which, with the number of import statements. The rules it should show are those that
``tests/test_layering.py`` enforces (docs/architecture.md).

    python tools/import_graph.py            # text, one line per edge "from -> to  (n)"
    python tools/import_graph.py --dot      # Graphviz
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "server", "model_export")


def folder_of(module: str) -> str | None:
    """``edge.adapters.store.sqlite`` -> ``edge/adapters/store``; ``server.web.app`` -> ``server/web``."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    depth = 3 if len(parts) > 2 and parts[1] == "adapters" else 2
    path = ROOT.joinpath(*parts[:depth])
    while len(parts[:depth]) > 1 and not path.is_dir():
        depth -= 1
        path = ROOT.joinpath(*parts[:depth])
    return "/".join(parts[:depth])


def graph() -> Counter:
    edges: Counter = Counter()
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            module = ".".join(rel.parts)
            src = folder_of(module)
            package = list(rel.parts)[:-1]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package[: len(package) - node.level + 1]
                        names = [".".join([*base, node.module] if node.module else base)]
                    else:
                        names = [node.module or ""]
                for n in names:
                    dst = folder_of(n)
                    if dst and dst != src:
                        edges[(src, dst)] += 1
    return edges


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dot", action="store_true")
    args = ap.parse_args()
    edges = graph()
    if args.dot:
        print("digraph imports {\n  rankdir=LR;")
        for (a, b), n in sorted(edges.items()):
            print(f'  "{a}" -> "{b}" [label={n}];')
        print("}")
        return
    for (a, b), n in sorted(edges.items()):
        print(f"{a:<24} -> {b:<24} ({n})")


if __name__ == "__main__":
    main()
