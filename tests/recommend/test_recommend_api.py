"""`advisor.recommend` is the lazy public API: callable, the same object however imported, and torch-free."""

from __future__ import annotations

import subprocess
import sys


def test_recommend_api_is_lazy_and_callable():
    code = (
        "import sys, advisor\n"
        "r = advisor.recommend\n"
        "assert callable(r)\n"
        "assert 'torch' not in sys.modules, 'import advisor.recommend pulled in torch'\n"
        "import advisor.recommend.run as run\n"
        "assert advisor.recommend is r and r.recommend is run.recommend\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unknown_option_is_a_usage_error(tmp_path):
    import pytest

    import advisor
    from advisor.errors import UsageError

    with pytest.raises(UsageError, match="unknown recommend option"):
        advisor.recommend(tmp_path, max_latnecy_ms=3)
