"""``python -m rig.demo_iscsi`` (the demo's first step) runs, reports every check, cleans up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rig.need import need_executable

pytestmark = [pytest.mark.tgt]

ROOT = Path(__file__).resolve().parents[3]


def test_demo_passes_and_leaves_no_tgtd() -> None:
    need_executable("tgtd", "tgt")
    done = subprocess.run(
        [sys.executable, "-m", "rig.demo_iscsi"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6/6 checks passed" in done.stdout
    assert "FAIL" not in done.stdout
    port = re.search(r"portal 127\.0\.0\.1:(\d+)", done.stdout)
    assert port
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert f"portal=127.0.0.1:{port.group(1)}" not in running.stdout
