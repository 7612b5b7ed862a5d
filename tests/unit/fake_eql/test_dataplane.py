"""The data plane against the in-memory recording backend and real sparse files."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from rig.fake_eql.dataplane import DataPlane, RecordingBackend, sparse_copy
from rig.fake_eql.model import AuthMethod, San, desired_targets
from rig.targets.base import Portal

MiB = 1024 * 1024


def test_sparse_copy_keeps_data_and_holes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    with open(src, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(3 * MiB)
        f.write(b"A" * 4096)
        f.seek(40 * MiB + 17)
        f.write(b"B" * 100)
    sparse_copy(src, dst, 64 * MiB)
    assert dst.read_bytes() == src.read_bytes()
    # only the written extents were allocated (a dense copy would be 64 MiB)
    assert os.stat(dst).st_blocks * 512 < 2 * MiB
    sparse_copy(src, tmp_path / "short", 4 * MiB)
    assert (tmp_path / "short").read_bytes() == src.read_bytes()[: 4 * MiB]


def _plane(tmp_path: Path) -> tuple[San, DataPlane, RecordingBackend]:
    backend = RecordingBackend()
    return San(group_name="g"), DataPlane(backend, tmp_path / "luns"), backend


def test_volume_lifecycle(tmp_path: Path) -> None:
    san, plane, backend = _plane(tmp_path)
    vol, ops = san.create_volume("v", 30)
    plane.apply(ops)
    plane.reconcile(desired_targets(san))
    lun = plane.lun_path(vol.uid)
    assert backend.targets[vol.iqn].backing_file == lun
    assert lun.stat().st_size == 30 * MiB
    assert backend.targets[vol.iqn].initiators == []  # no access record: no one

    san.create_chap_user("bob", "bob-secret-123")
    san.add_access(
        "v", initiator="iqn.1993-08.org.debian:01:ab", username="bob", authmethod=AuthMethod.CHAP
    )
    plane.reconcile(desired_targets(san))
    target = backend.targets[vol.iqn]
    assert target.initiators == ["iqn.1993-08.org.debian:01:ab"]
    assert target.incoming is not None and target.incoming.user == "bob"
    assert target.incoming.secret.reveal() == b"bob-secret-123"

    with open(lun, "r+b") as f:
        f.write(b"payload")
    clone, ops = san.clone_volume("v", "c")
    plane.apply(ops)
    plane.reconcile(desired_targets(san))
    assert plane.lun_path(clone.uid).read_bytes() == lun.read_bytes()
    assert backend.targets[clone.iqn].initiators == []

    ops = san.resize("v", 60, no_snap=True, now=datetime(2026, 1, 1, tzinfo=UTC))
    backend.calls.clear()
    plane.apply(ops)
    plane.reconcile(desired_targets(san))
    assert lun.stat().st_size == 60 * MiB
    # tgt reads a LUN's size once: a grown volume's target is recreated
    assert ("delete", vol.iqn) in backend.calls and ("create", vol.iqn) in backend.calls

    san.set_online("v", False)
    plane.reconcile(desired_targets(san))
    assert vol.iqn not in backend.targets and lun.exists()

    plane.apply(san.delete_volume("v"))
    plane.reconcile(desired_targets(san))
    assert not lun.exists()
    assert set(backend.targets) == {clone.iqn}


def test_reconcile_is_idempotent(tmp_path: Path) -> None:
    san, plane, backend = _plane(tmp_path)
    plane.apply(san.create_volume("v", 30)[1])
    plane.reconcile(desired_targets(san))
    backend.calls.clear()
    plane.reconcile(desired_targets(san))
    assert backend.calls == []


def test_reconcile_waits_for_the_backing_file(tmp_path: Path) -> None:
    san, plane, backend = _plane(tmp_path)
    vol, ops = san.create_volume("v", 30)
    plane.reconcile(desired_targets(san))  # the model ran ahead of its LunOps
    assert backend.targets == {}
    plane.apply(ops)
    plane.reconcile(desired_targets(san))
    assert list(backend.targets) == [vol.iqn]


def test_group_portal_redirects_to_member(tmp_path: Path) -> None:
    san = San(group_name="g")
    group, member = RecordingBackend(), RecordingBackend(Portal("127.0.0.1", 3261))
    plane = DataPlane(group, tmp_path / "luns", member=member)
    vol, ops = san.create_volume("v", 30)
    plane.apply(ops)
    plane.reconcile(desired_targets(san))
    assert group.targets[vol.iqn].redirect == Portal("127.0.0.1", 3261)
    assert member.targets[vol.iqn].redirect is None
    member.sessions[vol.iqn] = 2
    assert plane.session_count(vol.iqn) == 2
