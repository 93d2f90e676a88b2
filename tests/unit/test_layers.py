"""The package's layers, enforced: every import of the product (at any depth, lazy ones
inside functions included, and `importlib.import_module("...")` / `lazy_module("...")`
string literals) points down the layer order or stays within its layer, and no modules
import each other in a circle. The order, bottom to top (README, "How a plan becomes an
action"):

    models < recovery.settings, recovery.batch < recovery.adapters < recovery.application
    < recovery.reporting < tasks < flows < deployments < recovery.cli < devstack
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "recovery", "tasks", "flows", "deployments", "devstack")

#: Bottom to top; a module belongs to the longest prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("models",),
    ("recovery", "recovery.settings", "recovery.batch"),
    ("recovery.adapters",),
    ("recovery.application",),
    ("recovery.reporting",),
    ("tasks",),
    ("flows",),
    ("deployments",),
    ("recovery.cli",),
    ("devstack",),
)

#: Calls whose first argument, a string literal, names a module that is imported.
STRING_IMPORTERS = {"import_module", "lazy_module"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the most specific module the statement names)
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of the product, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The product module `name` denotes (a module, or the package holding a name), or
    None for anything outside the product."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(source: str, path: Path, modules: dict[str, Path], root: Path) -> list[Import]:
    """What `source` imports from the product, each with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    named: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, source, path.name == "__init__.py")
            for alias in node.names:
                # `from package import module` imports the module; `from module import
                # name`, the module
                whole = f"{base}.{alias.name}"
                named.append((whole if whole in modules else base, node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            if (called in STRING_IMPORTERS and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                named.append((node.args[0].value, node.lineno))
    found = {
        Import(source, target, path.relative_to(root), line)
        for name, line in named
        if (target := _resolve(name, modules)) is not None and target != source
    }
    return sorted(found, key=lambda e: (e.line, e.target))


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def layer_name(index: int) -> str:
    return " / ".join(LAYERS[index])


def import_graph(root: Path, packages: tuple[str, ...]) -> list[Import]:
    modules = product_modules(root, packages)
    return [edge for name, path in modules.items()
            for edge in imports_of(name, path, modules, root)]


def upward_imports(edges: list[Import]) -> list[str]:
    """Each import from a lower layer to a higher one, in words."""
    return [
        f"{e.where()}: {e.source} ({layer_name(layer_of(e.source))}) imports {e.target} "
        f"({layer_name(layer_of(e.target))}), a higher layer"
        for e in edges if layer_of(e.source) < layer_of(e.target)
    ]


def circles(edges: list[Import]) -> list[str]:
    """Each set of modules that import each other in a circle, as one cycle through it
    (Tarjan's strongly connected components, then a path round each)."""
    graph: dict[str, dict[str, Import]] = {}
    for e in edges:
        graph.setdefault(e.source, {}).setdefault(e.target, e)
        graph.setdefault(e.target, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_describe_cycle(component, graph) for component in components]


def _describe_cycle(component: list[str], graph: dict[str, dict[str, Import]]) -> str:
    """A shortest path from the component's first module back to itself, with lines."""
    members = set(component)
    start = component[0]
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt, edge in sorted(graph[node].items()):
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = edge
                    following.append(nxt)
        if start in came_from:
            break
        frontier = following
    path: list[Import] = []
    node = start
    while True:
        edge = came_from[node]
        path.append(edge)
        node = edge.source
        if node == start:
            break
    path.reverse()
    steps = " -> ".join([start, *(e.target for e in path)])
    lines = "; ".join(e.where() for e in path)
    return f"circle {steps} ({lines})"


# ---------------------------------------------------------------- the product


def test_every_product_module_is_in_a_layer() -> None:
    for name in product_modules(ROOT, PACKAGES):
        layer_of(name)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = upward_imports(import_graph(ROOT, PACKAGES))
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle() -> None:
    found = circles(import_graph(ROOT, PACKAGES))
    assert not found, "import circles:\n" + "\n".join(found)


# ---------------------------------------------------------------- the checker itself


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_names_a_planted_upward_import_with_its_line(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "models/__init__.py": "",
        "models/risk.py": "import os\n\n\ndef rate():\n    from flows import lifecycle\n",
        "flows/__init__.py": "",
        "flows/lifecycle.py": "from models.risk import rate\n",
        "recovery/__init__.py": "",
        "recovery/adapters/__init__.py": "",
        "recovery/adapters/db.py": (
            "import importlib\n\nmod = importlib.import_module('recovery.application.x')\n"),
        "recovery/application/__init__.py": "",
        "recovery/application/x.py": "from ..adapters import db\n",
    })
    edges = import_graph(tmp_path, ("models", "flows", "recovery"))
    upward = upward_imports(edges)
    assert len(upward) == 2, upward
    assert upward[0].endswith("models.risk (models) imports flows.lifecycle (flows), "
                              "a higher layer")
    assert "models/risk.py:5:" in upward[0]
    assert "recovery/adapters/db.py:3: recovery.adapters.db" in upward[1]
    assert "imports recovery.application.x" in upward[1]


def test_the_checker_reports_a_planted_circle(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "tasks/__init__.py": "",
        "tasks/a.py": "from tasks import b\n",
        "tasks/b.py": "def f():\n    from tasks.c import g\n",
        "tasks/c.py": "import tasks.a\n\n\ndef g():\n    pass\n",
        "tasks/d.py": "from tasks import a, b, c\n",  # imports all three, in no circle
    })
    found = circles(import_graph(tmp_path, ("tasks",)))
    assert found == ["circle tasks.a -> tasks.b -> tasks.c -> tasks.a "
                     "(tasks/a.py:1; tasks/b.py:2; tasks/c.py:1)"]
