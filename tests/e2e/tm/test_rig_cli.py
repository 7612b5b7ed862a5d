"""``eqliscsi rig up|status|down`` as a person runs it: separate processes, real rig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import need_embedded_rig

pytestmark = [pytest.mark.tgt, pytest.mark.slow]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eqliscsi", "rig", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_up_status_down(tmp_path: Path) -> None:
    need_embedded_rig()
    root = tmp_path / "rig"
    up = _cli("up", "--dir", str(root))
    try:
        assert up.returncode == 0, up.stderr
        assert (root / "fe" / "sim" / "frontend" / "remotes" / "tm" / "eqliscsi" / "clone").exists()
        st = _cli("status", "--dir", str(root))
        assert st.returncode == 0, st.stderr
        state = json.loads(st.stdout)
        assert state["fake_group"]["alive"] is True
        assert [h["name"] for h in state["hosts"]] == ["h1", "h2"]
        netns = [h["netns"] for h in state["hosts"]]
        assert all(Path(f"/run/netns/{n}").exists() for n in netns)
        ssh = subprocess.run(
            ["ssh", "-F", str(root / "fe" / "ssh_config"), "h2", "hostname"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert ssh.stdout.strip() == "h2", ssh.stderr
        again = _cli("up", "--dir", str(root))
        assert again.returncode != 0 and "already up" in again.stderr
    finally:
        down = _cli("down", "--dir", str(root))
    assert down.returncode == 0, down.stderr
    assert not _alive(state["fake_group"]["pid"])
    assert not any(Path(f"/run/netns/{n}").exists() for n in netns)
    loops = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout  # fmt: skip
    assert str(root) not in loops
    # The group's tgtd (iSCSI portal) no longer listens.
    port = state["portal"][1]
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    assert listening.strip() == ""
