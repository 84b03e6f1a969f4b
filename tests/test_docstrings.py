"""Numpydoc docstrings on the documented surface: every function and class the API reference
page shows and every package function the command line calls documents each of its parameters
(no more, no fewer) under Parameters, and what it returns under Returns or Yields."""

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.M)


def _cli_names():
    """package.module.name of every package function or class the CLI modules use."""
    names = set()
    for path in sorted((ROOT / "src/hessian_powerlaw/cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hessian_powerlaw")):
                continue
            if node.module.startswith("hessian_powerlaw.cli"):
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                try:
                    importlib.import_module(full)
                    modules[alias.asname or alias.name] = full
                except ImportError:
                    names.add(full)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                names.add(f"{modules[node.value.id]}.{node.attr}")
    return names


def _api_page_names():
    text = (ROOT / "docs/reference/api.md").read_text()
    return {line[4:].strip() for line in text.splitlines() if line.startswith("::: ")}


def _documented():
    """(name, function, docstring) of the surface: functions, public methods (class and static
    methods included), and each class's constructor with the class docstring."""
    out = []
    for name in sorted(_cli_names() | _api_page_names()):
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr, None)
        if inspect.isfunction(obj):
            out.append((name, obj, inspect.getdoc(obj)))
        elif inspect.isclass(obj):
            init = vars(obj).get("__init__")
            if inspect.isfunction(init):
                out.append((f"{name}.__init__", init, inspect.getdoc(obj)))
            for key, member in vars(obj).items():
                if isinstance(member, (classmethod, staticmethod)):
                    member = member.__func__
                if inspect.isfunction(member) and not key.startswith("_"):
                    out.append((f"{name}.{key}", member, inspect.getdoc(member)))
    return out


def sections(doc):
    """{section title: body text} of a numpydoc docstring."""
    heads = list(SECTION.finditer(doc or ""))
    return {
        m.group(1): doc[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(doc)]
        for i, m in enumerate(heads)
    }


def documented_names(body):
    """Parameter names of a Parameters (or Attributes) section: 'a, b : type', '**options'."""
    names = []
    for line in body.splitlines():
        if line and not line[0].isspace():
            head = line.split(" : ")[0]
            names += [part.strip().lstrip("*") for part in head.split(",")]
    return names


def problems(function, doc):
    """What the docstring of `function` lacks or gets wrong."""
    found = sections(doc)
    signature = inspect.signature(function)
    params = [p for p in signature.parameters if p not in ("self", "cls")]
    out = []
    listed = found.get("Parameters") or found.get("Attributes")
    if params and listed is None:
        out.append("no Parameters section")
    elif params:
        names = documented_names(listed)
        out += [f"parameter {p} undocumented" for p in params if p not in names]
        if "Parameters" in found:
            out += [f"documents {n}, which it does not take" for n in names if n not in params]
    returns = signature.return_annotation
    if function.__name__ != "__init__" and returns not in (None, "None", inspect.Signature.empty):
        if "Returns" not in found and "Yields" not in found:
            out.append("no Returns section")
    return out


SURFACE = _documented()


def test_the_surface_holds_the_api_and_the_cli_calls():
    names = {name for name, _, _ in SURFACE}
    assert "hessian_powerlaw.network.api.top_spectrum" in names
    assert "hessian_powerlaw.fit.power_law_fit" in names
    assert "hessian_powerlaw.protein.batch.analyse_many" in names  # called by `protein`
    # a classmethod the CLI calls
    assert "hessian_powerlaw.network.eigensolvers.SolverCheckpoint.for_group" in names
    assert len(names) > 80


@pytest.mark.parametrize(("name", "function", "doc"), SURFACE, ids=[s[0] for s in SURFACE])
def test_numpydoc_sections(name, function, doc):
    assert not problems(function, doc), f"{name}: {'; '.join(problems(function, doc))}"


def test_the_check_finds_what_is_missing():
    def f(a: int, b: int) -> int:
        """Sum.

        Parameters
        ----------
        a : int
            One.
        c : int
            Not a parameter.
        """

    assert problems(f, inspect.getdoc(f)) == [
        "parameter b undocumented",
        "documents c, which it does not take",
        "no Returns section",
    ]
