"""The direction of imports between camrelay's packages (ARCHITECTURE.md), and no cycles.

Read from the source with ``ast`` (nothing is imported): every ``import`` counts, at
module level, in a function or under ``TYPE_CHECKING`` -- a dependency the code names is
a dependency.  Cycles are looked for among module-level imports (the ones that run when a
module loads)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "camrelay"

# what each part may never import (by dotted prefix)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "camrelay.relay": ("camrelay.web", "camrelay.store", "camrelay.access", "camrelay.cli",
                       "camrelay.cluster", "camrelay.catalog", "camrelay.onvif",
                       "camrelay.app", "camrelay.server", "camrelay.metrics"),
    "camrelay.store": ("camrelay.catalog", "camrelay.access", "camrelay.relay",
                       "camrelay.web", "camrelay.cli", "camrelay.cluster", "camrelay.onvif"),
    "camrelay.catalog": ("camrelay.access", "camrelay.relay", "camrelay.web", "camrelay.cli",
                         "camrelay.cluster", "camrelay.onvif"),
    "camrelay.access": ("camrelay.relay", "camrelay.web", "camrelay.cli", "camrelay.cluster",
                        "camrelay.onvif", "aiohttp"),
    "camrelay.onvif": ("camrelay.catalog", "camrelay.access", "camrelay.relay",
                       "camrelay.web", "camrelay.store", "camrelay.cli", "camrelay.cluster"),
    "camrelay.web": ("camrelay.cli", "camrelay.cluster"),
    "camrelay.cluster": ("camrelay.cli",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from package import submodule` names the submodule; anything else the
                # module it comes from
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in KNOWN else base


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


KNOWN = set(modules())


def test_packages_import_only_downwards() -> None:
    broken = []
    for name, path in sorted(modules().items()):
        for part, forbidden in FORBIDDEN.items():
            if name == part or name.startswith(part + "."):
                for target in set(imports(path, top_level_only=False)):
                    if target.startswith(forbidden) and not target.startswith(part):
                        broken.append(f"{name} imports {target}")
    assert broken == [], "\n".join(broken)


def test_no_import_cycles() -> None:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        # a package's __init__ runs before any of its modules: not an edge of their own
        graph[name] = {t for t in imports(path, top_level_only=True)
                       if t in known and t != name and not name.startswith(t + ".")}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == [], cycles
