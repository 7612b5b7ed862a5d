"""The tgt backend configures what it says, as judged by libiscsi's tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rig.targets.base import TargetBackend
from rig.targets.tgt import TgtBackend, TgtError

from .conftest import MakeBackend, MakeDisk, chap
from .judges import iscsi_ls, iscsi_ls_targets, iscsi_readcapacity16

pytestmark = [pytest.mark.tgt, pytest.mark.judge]

IQN = "iqn.2026-01.test.eqliscsi:backend"


def test_created_target_is_served_with_its_disk(
    backend: TargetBackend, make_disk: MakeDisk
) -> None:
    disk = make_disk(size_bytes=24 << 20)
    backend.create_target(IQN, disk)
    run = iscsi_ls(backend.portal)
    assert run.returncode == 0, run.stderr
    assert iscsi_ls_targets(run.stdout) == {IQN: [f"{backend.portal},1"]}
    lun = backend.lun_of(IQN)
    assert lun == 1  # tgt: LUN 0 is the controller
    assert iscsi_readcapacity16(backend.portal, IQN, lun) == 24 << 20


def test_delete_target_removes_it_and_is_idempotent(
    backend: TargetBackend, make_disk: MakeDisk
) -> None:
    other = IQN + "-other"
    backend.create_target(IQN, make_disk())
    backend.create_target(other, make_disk())
    backend.delete_target(IQN)
    backend.delete_target(IQN)
    run = iscsi_ls(backend.portal)
    assert run.returncode == 0, run.stderr
    assert iscsi_ls_targets(run.stdout) == {other: [f"{backend.portal},1"]}


def test_acl_hides_target_from_other_initiators(
    backend: TargetBackend, make_disk: MakeDisk
) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_initiators(IQN, ["iqn.2026-01.test.eqliscsi:someone-else", "192.0.2.7"])
    assert iscsi_ls_targets(iscsi_ls(backend.portal).stdout) == {}
    backend.set_initiators(IQN, ["127.0.0.1"])
    assert IQN in iscsi_ls_targets(iscsi_ls(backend.portal).stdout)
    backend.set_initiators(IQN, None)
    assert IQN in iscsi_ls_targets(iscsi_ls(backend.portal).stdout)


def test_discovery_chap_is_enforced(backend: TargetBackend, make_disk: MakeDisk) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_discovery_chap(chap("disco", "discovery-secret-1"), None)
    refused = iscsi_ls(backend.portal)
    assert refused.returncode != 0
    assert "513" in refused.stderr  # 0x0201 authentication failure
    wrong = iscsi_ls(backend.portal, "disco", "not-the-secret-00")
    assert wrong.returncode != 0
    ok = iscsi_ls(backend.portal, "disco", "discovery-secret-1")
    assert ok.returncode == 0, ok.stderr
    backend.set_discovery_chap(None, None)
    assert iscsi_ls(backend.portal).returncode == 0


def test_target_chap_is_enforced_on_login(backend: TargetBackend, make_disk: MakeDisk) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_chap(IQN, chap("tuser", "target-secret-01"), None)
    # iscsi-ls -s logs in to list LUNs: without CHAP that login fails.
    assert iscsi_ls(backend.portal).returncode != 0
    ok = iscsi_ls(backend.portal, "tuser", "target-secret-01")
    assert ok.returncode == 0, ok.stderr
    assert "Lun:1" in ok.stdout


def test_redirect_sends_logins_to_the_other_portal(
    make_backend: MakeBackend, make_disk: MakeDisk
) -> None:
    group = make_backend("127.0.0.1")
    member = make_backend("127.0.0.2")
    group.create_target(IQN, make_disk(size_bytes=8 << 20))
    member.create_target(IQN, make_disk(size_bytes=12 << 20))
    group.set_redirect(IQN, member.portal)
    # Discovery still answers at the group portal; a login lands on the member's disk.
    assert iscsi_ls_targets(iscsi_ls(group.portal).stdout) == {IQN: [f"{group.portal},1"]}
    assert iscsi_readcapacity16(group.portal, IQN, 1) == 12 << 20
    group.set_redirect(IQN, None)
    assert iscsi_readcapacity16(group.portal, IQN, 1) == 8 << 20


def test_close_kills_tgtd(make_backend: MakeBackend, make_disk: MakeDisk) -> None:
    backend = make_backend()
    assert isinstance(backend, TgtBackend)
    backend.create_target(IQN, make_disk())  # with targets, tgtd ignores SIGTERM
    pid = backend.pid
    backend.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    backend.close()  # idempotent


def test_secret_never_in_error_message(backend: TargetBackend, make_disk: MakeDisk) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_chap(IQN, chap("dup", "first-secret-0001"), None)
    with pytest.raises(TgtError) as info:
        backend.set_chap(IQN, chap("dup", "second-secret-002"), None)
    assert "secret-00" not in str(info.value)
    assert "distinct user" in str(info.value)


def test_missing_backing_file_is_refused(backend: TargetBackend, tmp_path: Path) -> None:
    with pytest.raises(TgtError, match="does not exist"):
        backend.create_target(IQN, tmp_path / "nope.img")
