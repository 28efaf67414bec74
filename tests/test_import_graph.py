"""kerascnn's import graph, read from the source with ``ast``: no cycle between modules and
no import from a lower part of the package into a higher one. Imports inside functions count
too (a lazy import still ties the two modules together)."""

import ast
import pathlib

import kerascnn

PACKAGE = pathlib.Path(kerascnn.__file__).parent

#: the parts of the package, lowest first: a part imports only parts below it (and itself)
LAYERS = [
    ["errors"],
    ["checks"],
    ["backends", "activations", "listing"],
    ["layers"],
    ["pipelines"],
    ["zoo"],
    ["fold", "tasks"],
    ["inference"],
    ["export"],
    ["plotting"],
    ["training"],
    ["experiments"],
    ["cli"],
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["kerascnn", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """Module -> the kerascnn modules it imports; ``from a.b import c`` counts as importing
    ``a.b.c`` when that is a module, else ``a.b``."""
    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                found.update(subs if len(subs) == len(node.names) else [target, *subs])
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        edges[name] = {m for m in found if m in modules and m != name}
    return edges


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_part_has_a_place_in_the_layers():
    parts = {_part(m) for m in _modules()} - {None}
    assert parts <= set(RANK), f"parts missing from LAYERS: {sorted(parts - set(RANK))}"


def test_no_import_cycle():
    assert _cycles(_imports(_modules())) == []


def test_no_upward_import():
    upward = []
    for module, targets in _imports(_modules()).items():
        part = _part(module)
        if part is None:
            continue  # the package's __init__ gathers the public API from every part
        for target in targets:
            other = _part(target)
            if other is None or RANK[other] > RANK[part]:
                upward.append(f"{module} -> {target}")
    assert sorted(upward) == []


def test_the_checker_finds_a_cycle_and_an_upward_import():
    """The checks above can fail: a made-up graph with a cycle and an upward edge."""
    edges = {
        "kerascnn.layers.a": {"kerascnn.training.b"},
        "kerascnn.training.b": {"kerascnn.layers.a"},
    }
    assert _cycles(edges) == [["kerascnn.layers.a", "kerascnn.training.b"]]
    assert RANK[_part("kerascnn.training.b")] > RANK[_part("kerascnn.layers.a")]
