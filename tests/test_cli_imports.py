"""`advisor --help` and `advisor catalog list` stay fast: they must not import torch, timm or transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from typer.testing import CliRunner
from advisor.cli.main import app
r = CliRunner().invoke(app, {args!r})
assert r.exit_code == 0, r.output
heavy = sorted(m for m in ("torch", "timm", "transformers", "torchvision") if m in sys.modules)
print(",".join(heavy) or "none")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["catalog", "list", "--limit", "2"],
        ["catalog", "show", "timm:resnet18.a1_in1k"],
        *([cmd, "--help"] for cmd in ("recommend", "features", "finetune", "bench", "score", "report")),
        ["data", "profile", "--help"],
    ],
)
def test_light_commands_do_not_import_torch(args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"
