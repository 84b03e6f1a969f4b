"""The package's shape as ARCHITECTURE.md promises it: small modules, short functions (lines of
code: a docstring never has to be cut to fit), and every public function with type hints (the
docstrings are ruff's D rules, in CI, and tests/test_docstrings.py)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hessian_powerlaw"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _name(path):
    return str(path.relative_to(PACKAGE.parent))


def _functions(tree, prefix=""):
    """(qualified name, node, public) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            public = not (prefix + node.name).startswith("_") and "._" not in prefix
            public = public and (not node.name.startswith("_") or node.name in ("__init__", "__call__"))
            yield prefix + node.name, node, public
            yield from _functions(node, f"{prefix}{node.name}.<locals>._")


def code_lines(node):
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def _missing_hints(node):
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    missing = [
        a.arg for a in every if a is not None and a.annotation is None and a.arg not in ("self", "cls")
    ]
    if node.returns is None and node.name != "__init__":
        missing.append("return")
    return missing


def test_the_checks_see_the_package():
    assert len(MODULES) > 50 and any(p.name == "api.py" for p in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_are_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_are_short(path):
    long = [
        f"{name} ({code_lines(node)} lines)"
        for name, node, _ in _functions(ast.parse(path.read_text()))
        if code_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: {', '.join(long)}"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_public_functions_have_type_hints(path):
    if any(part.startswith("_") and part != "__init__.py" for part in path.relative_to(PACKAGE).parts):
        pytest.skip("a private module")
    unhinted = [
        f"{name} ({', '.join(missing)})"
        for name, node, public in _functions(ast.parse(path.read_text()))
        if public and (missing := _missing_hints(node))
    ]
    assert not unhinted, f"{_name(path)}: no type hints on {'; '.join(unhinted)}"


def test_code_lines_leave_out_the_docstring():
    tree = ast.parse('def f():\n    """One.\n\n    Two.\n    """\n    a = 1\n    return a\n')
    assert code_lines(tree.body[0]) == 3


def test_the_hint_check_finds_a_missing_hint():
    tree = ast.parse("def f(a, b: int) -> int: ...\nclass C:\n    def m(self, x: int): ...\n")
    found = {name: _missing_hints(node) for name, node, public in _functions(tree) if public}
    assert found == {"f": ["a"], "C.m": ["return"]}
