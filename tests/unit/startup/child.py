"""A fresh interpreter, as oned starts a remote, for the start-up tests."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run_child(code: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with ``argv`` in a new interpreter, the checkout first.

    ``-S``, with the checkout and site-packages on ``PYTHONPATH`` instead: in a
    development venv, site runs the editable install's .pth finder, which imports
    pathlib and more before any remote code; an installed remote's interpreter does not.
    """
    path = f"{ROOT}:{sysconfig.get_paths()['purelib']}"
    return subprocess.run(
        [sys.executable, "-S", "-c", textwrap.dedent(code), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": path, "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
