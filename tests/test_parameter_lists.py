"""Every public function and method of the package takes at most eight parameters besides
``self`` / ``cls``, ``*args`` and ``**kwargs``: longer lists go into an options object (a
frozen dataclass of a family's layout, the zoo's ``Builder``) or checked keyword options."""

import ast
import pathlib

import kerascnn

PACKAGE = pathlib.Path(kerascnn.__file__).parent
LIMIT = 8


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Positional and keyword-only parameters, ``self`` / ``cls`` left out (``*args`` and
    ``**kwargs`` are not in these lists)."""
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names)


def public_functions(tree: ast.Module):
    """``(qualified name, node)`` of the public functions and methods: module functions and
    methods of module classes whose names do not start with ``_`` (``__init__`` counts),
    nested classes included; functions defined inside functions are private to them."""

    def visit(body, prefix, in_class):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                public = not node.name.startswith("_") or (in_class and node.name == "__init__")
                if public:
                    yield f"{prefix}{node.name}", node
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from visit(node.body, f"{prefix}{node.name}.", True)

    yield from visit(tree.body, "", False)


def long_parameter_lists(root: pathlib.Path = PACKAGE, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, node in public_functions(tree):
            count = parameter_count(node)
            if count > limit:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {name}: {count}")
    return found


def test_the_scan_counts_parameters_as_specified():
    tree = ast.parse(
        "def f(a, b, /, c, *args, d, e=1, **kwargs): pass\n"
        "def _private(a, b, c, d, e, f, g, h, i): pass\n"
        "class C:\n"
        "    def __init__(self, a, b, c, d, e, f, g, h, i): pass\n"
        "    @classmethod\n"
        "    def make(cls, a, *, b): pass\n"
        "    def _helper(self, a, b, c, d, e, f, g, h, i): pass\n"
        "class _Hidden:\n"
        "    def run(self, a, b, c, d, e, f, g, h, i): pass\n"
    )
    counts = {name: parameter_count(node) for name, node in public_functions(tree)}
    assert counts == {"f": 5, "C.__init__": 9, "C.make": 2}


def test_public_parameter_lists_are_at_most_eight_long():
    offenders = long_parameter_lists()
    assert not offenders, (
        f"{len(offenders)} public functions take more than {LIMIT} parameters besides "
        "self/cls, *args and **kwargs:\n" + "\n".join(offenders)
    )
