"""``python -m rig.demo`` (the README's demo) tells the whole story and cleans up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import need_embedded_rig

pytestmark = [pytest.mark.tgt, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_demo_passes_and_cleans_up() -> None:
    need_embedded_rig()
    done = subprocess.run(
        [sys.executable, "-m", "rig.demo"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    m = re.search(r"^(\d+)/(\d+) steps passed; rig down, files removed\.$", done.stdout, re.M)
    assert m is not None and m[1] == m[2] and int(m[2]) >= 11, done.stdout
    for step in ("DS cp", "TM clone", "pre/postmigrate", "failmigrate", "cpds", "TM ln",
                 "TM mv", "TM mvds", "TM delete"):  # fmt: skip
        assert step in done.stdout
    # No loop device of the demo's rig is left, and its iSCSI portal is closed.
    loops = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "eqliscsi-demo-rig-" not in loops.stdout
    portal = re.search(r"iSCSI 10\.254\.\d+\.1:(\d+)", done.stdout)
    assert portal is not None
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{portal[1]}"], capture_output=True, text=True, check=True
    )
    assert listening.stdout.strip() == ""
