"""The documentation's examples run (doctests of the public API), and its generated reference
pages name every subcommand and every configuration key."""

import doctest
import re

import pytest

from hessian_powerlaw import fit
from hessian_powerlaw.cli import build_parser
from hessian_powerlaw.config import load_schema


@pytest.mark.parametrize("module", ["fit", "api"])
def test_api_examples_run(module):
    if module == "api":
        pytest.importorskip("torch")
        from hessian_powerlaw.network import api as target
    else:
        target = fit
    result = doctest.testmod(target, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_reference_pages_name_every_subcommand_and_key(tmp_path, monkeypatch):
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "docs"))
    import gen_reference

    cli = gen_reference.cli_page()
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(re.findall(r"^## `([a-z-]+)`$", cli, re.M)) == set(sub.choices)
    config = gen_reference.config_page()

    def keys(node, path=""):
        for key, child in node.get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            yield here
            yield from keys(child, here)
            if isinstance(child.get("items"), dict):
                yield from keys(child["items"], f"{here}[]")

    for key in keys(load_schema()):
        assert f"| `{key}` |" in config, key


def test_readme_results_table_is_the_generated_one():
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "docs"))
    import gen_results

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- results:begin -->\n")[1].split("\n<!-- results:end -->")[0]
    assert block == gen_results.readme_table()
    assert len(readme.splitlines()) <= 150
    for link in re.findall(r"\]\((docs/[^)#]+)\)", readme):
        assert (ROOT / link).is_file(), link
