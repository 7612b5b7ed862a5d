"""A node database in a temporary directory for the stand-in's ``main`` (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.hosts import iscsiadm_standin as standin


@pytest.fixture
def standin_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """open-iscsi's /etc/iscsi (an empty ifaces/) that the stand-in reads and writes."""
    root = tmp_path / "iscsi"
    (root / "ifaces").mkdir(parents=True)
    (root / "eqliscsi-standin.conf").write_text(f"state_dir = {tmp_path / 'state'}\n")
    monkeypatch.setattr(standin, "ISCSI_DB", root)
    return root
