"""The package's import graph: no cycles between modules or between top-level packages, and the lower layers
(files, detection, preprocessing, models) never import the ones above them. Every import counts, including those
inside functions: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mmtumor"

#: what each lower layer must never import (shared/ARCHITECTURE.md: files -> detect -> preprocess -> infer -> writers)
FORBIDDEN = {
    "io": {"detect", "convert", "preprocess", "infer", "train", "benchmark", "api", "cli", "weights"},
    "detect": {"convert", "preprocess", "infer", "train", "benchmark", "api", "cli", "weights"},
    "preprocess": {"convert", "infer", "train", "benchmark", "api", "cli", "weights", "models"},
    "models": {"io", "preprocess", "infer", "train", "benchmark", "api", "cli", "weights"},
    "infer": {"train", "benchmark", "api", "cli"},
    "postprocess": {"infer", "train", "benchmark", "api", "cli", "metrics"},
    "metrics": {"infer", "train", "benchmark", "api", "cli", "postprocess"},
    "voxels": {"io", "preprocess", "infer", "train", "benchmark", "api", "cli"},
    # the measurements are pure functions on label maps: no files, no models, no pipeline
    "lesions": {"io", "preprocess", "infer", "train", "benchmark", "compare", "api", "cli", "weights", "models"},
    "rano": {"io", "preprocess", "infer", "train", "benchmark", "compare", "api", "cli", "weights", "models"},
    "compare": {"train", "benchmark", "api", "cli"},
}


def _module_names() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (``from .x import y`` resolves to ``x.y`` when that is a module)."""
    mods = _module_names()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for alias in node.names:
                    full = f"{mod}.{alias.name}"
                    targets.append(full if full in mods else mod)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in import_graph().items():
        for b in targets:
            ta, tb = _top(a), _top(b)
            if ta and tb and ta != tb:
                out.setdefault(ta, set()).add(tb)
    return out


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "mmtumor.infer.core" in graph["mmtumor.infer.predictor"]
    assert "mmtumor.postprocess" in graph["mmtumor.infer.core"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]  # the checker itself finds a cycle


def test_no_import_cycle_between_modules():
    assert _cycles(import_graph()) == []


def test_no_import_cycle_between_packages():
    assert _cycles(package_graph()) == []


def test_lower_layers_never_import_upper_ones():
    pkg = package_graph()
    bad = {layer: sorted(pkg.get(layer, set()) & above) for layer, above in FORBIDDEN.items()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_module_is_much_over_500_lines():
    """Long modules hide several concerns: none may pass 550 lines (split it by concern instead)."""
    long = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if len(p.read_text().splitlines()) > 550}
    assert not long, f"modules over 550 lines: {sorted(long)}"
