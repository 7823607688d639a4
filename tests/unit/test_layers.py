"""The import graph keeps the layers of docs/architecture.md: no import runs up, no circle.

Read from the source (every import statement, the ones inside functions and under
TYPE_CHECKING too: a reader follows those as well), so it costs a parse of the package,
not an import of it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import epochwatch

PACKAGE = Path(epochwatch.__file__).resolve().parent

# Bottom to top, as docs/architecture.md draws them. A module may import its own package
# and any layer below its own; not a layer above, and not another package of its layer.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "__init__",
            "guard",
            "envvars",
            "fingerprint",
            "identity",
            "intervals",
            "logged",
            "postimport",
            "quiet_gc",
            "serials",
            "text_safety",
        }
    ),
    frozenset({"trace", "notices"}),
    frozenset({"samplers"}),
    frozenset({"analysis"}),
    frozenset({"checkpoints", "report", "runname", "explain"}),
    frozenset({"recorder", "step_clock", "console", "notebook"}),
    frozenset({"exporters"}),
    frozenset({"integrations"}),
    frozenset({"hook", "daemon", "top"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if sub in modules else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {t for t in _imports(p, modules) if t in modules and t != m} for m, p in modules.items()}


def _unit(module: str) -> str:
    """The layer member a module belongs to: its package under epochwatch, or itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(unit: str) -> int:
    for i, members in enumerate(LAYERS):
        if unit in members:
            return i
    raise AssertionError(f"epochwatch.{unit} is in no layer: add it to LAYERS and docs/architecture.md")


def test_no_import_runs_up_the_layers() -> None:
    wrong = set()
    for module, targets in _graph().items():
        src = _unit(module)
        for target in targets:
            dst = _unit(target)
            if dst != src and _layer(dst) >= _layer(src):
                wrong.add((module, target))
    assert wrong == set(), "imports that run up (or across) the layers of docs/architecture.md"


# Inside analysis/, bottom to top: the core (records, series, statistics, findings and their
# ledger, restore analysis), the detectors, and what runs them (engine, files, jobs, online).
ANALYSIS_LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "__init__",
            "attribution",
            "findings",
            "frameworks",
            "functions",
            "growth",
            "inference_advice",
            "input_compare",
            "job",
            "leaks",
            "ledger",
            "restore",
            "retrace_count",
            "run",
            "series",
            "shapes",
            "trend",
            "units",
            "view",
            "waiting",
        }
    ),
    frozenset({"detectors"}),
    frozenset({"engine", "files", "guarded", "jobs", "online", "worker"}),
)


def _analysis_layer(module: str) -> int:
    parts = module.split(".")
    unit = parts[2] if len(parts) > 2 else "__init__"
    for i, members in enumerate(ANALYSIS_LAYERS):
        if unit in members:
            return i
    raise AssertionError(f"epochwatch.analysis.{unit} is in no sub-layer: add it to ANALYSIS_LAYERS and docs")


def test_no_import_runs_up_inside_analysis() -> None:
    wrong = set()
    for module, targets in _graph().items():
        if _unit(module) != "analysis":
            continue
        for target in targets:
            if _unit(target) == "analysis" and _analysis_layer(target) > _analysis_layer(module):
                wrong.add((module, target))
    assert wrong == set(), "analysis modules that import up: core < detectors < engine, files, jobs, online"


def test_no_relative_imports() -> None:
    """Absolute imports only: the graph above reads them, and a moved module cannot change their meaning."""
    relative = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []


def test_every_module_is_named_in_the_architecture_brief() -> None:
    """Issue 21: docs/architecture.md names every module in its place, so a newcomer finds
    each one there: by its file name (`sampling.py`) or its path (`daemon/sampling`,
    `daemon.sampling`)."""
    brief = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    unnamed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        names = {path.name} | {sep.join(parts[-k:]) for k in range(2, len(parts) + 1) for sep in ("/", ".")}
        if not any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", brief) for n in names):
            unnamed.append(str(path.relative_to(PACKAGE)))
    assert unnamed == [], "modules docs/architecture.md does not name"


def test_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.add(tuple(sorted(part)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == set(), "modules that import each other"
