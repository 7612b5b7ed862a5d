"""Skip-or-fail for rig components.

A test that needs a component this machine lacks skips with a one-line reason, except
under ``EQLISCSI_RIG_REQUIRED=1`` (set by ``.ci/run``), where the same situation is a
failure: CI must never hide a missing install step behind a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["need", "need_executable", "rig_required"]


def rig_required() -> bool:
    return os.environ.get("EQLISCSI_RIG_REQUIRED", "") == "1"


def need(condition: bool, reason: str) -> None:
    """Continue when ``condition`` holds; otherwise skip (or fail when the rig is required)."""
    if condition:
        return
    if rig_required():
        pytest.fail(f"EQLISCSI_RIG_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def need_executable(name: str, package: str) -> str:
    """The path of ``name``; skip/fail when it is missing, naming the Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    need(path is not None, f"{name} is not installed (Debian package {package})")
    assert path is not None
    return path
