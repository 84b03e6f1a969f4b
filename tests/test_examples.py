"""The examples run as a user runs them."""

import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_resnet18_per_block_example():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "resnet18_blocks.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("fc.*: 5130 parameters") and lines[-1].startswith("total")
    assert any("layer4.1.bn2.*: 1024 parameters" in line for line in lines)
