"""The code base stays ruff-clean (lint and format), as the project's guide asks."""

import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_check_and_format():
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
