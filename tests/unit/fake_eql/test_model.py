"""The pure SAN model: rules, LUN operations and the targets it asks for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rig.fake_eql.model import (
    MB,
    ApplyTo,
    AuthMethod,
    CliError,
    LunOp,
    San,
    TargetSpec,
    desired_targets,
    reserve_mb,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "reserve"), [(1, 15), (15, 15), (16, 30), (1024, 1035), (2048, 2055)]
)
def test_reserve_rounds_up_to_15mb(size: int, reserve: int) -> None:
    assert reserve_mb(size) == reserve


def test_create_gives_iqn_and_allocates_rounded_lun() -> None:
    san = San(group_name="g")
    vol, ops = san.create_volume("v1", 1024)
    assert ops == [LunOp("allocate", vol.uid, 1085276160)]  # 69 x 15 MiB, as on the array
    assert vol.lun_bytes == 1035 * MB
    assert len(vol.iqn.split(":", 1)[1]) == 36 + len("v1")
    vol2, _ = san.create_volume("v2", 1024)
    assert vol2.iqn != vol.iqn and vol2.uid != vol.uid


def test_iqns_are_deterministic() -> None:
    a, b = San(group_name="g"), San(group_name="g")
    assert a.create_volume("v", 10)[0].iqn == b.create_volume("v", 10)[0].iqn


def test_errors_change_nothing() -> None:
    san = San(group_name="g")
    san.create_volume("v1", 100)
    before = (san.generation, san.serial, dict(san.volumes))
    for action in (
        lambda: san.create_volume("v1", 100),
        lambda: san.create_volume("v2", 100 * 1024 * 1024),
        lambda: san.delete_volume("v1"),
        lambda: san.clone_volume("v1", "v1"),
        lambda: san.add_access("v1"),
        lambda: san.add_access("v1", ipaddress="300.1.1.1"),
        lambda: san.resize("v1", 10, no_snap=True, now=NOW),
        lambda: san.delete_access("v1", 1),
        lambda: san.rename_volume("v1", "bad name"),
    ):
        with pytest.raises(CliError):
            action()
        assert (san.generation, san.serial, dict(san.volumes)) == before


def test_clone_copies_data_and_gets_no_access() -> None:
    san = San(group_name="g")
    src, _ = san.create_volume("src", 100)
    san.add_access("src", ipaddress="*.*.*.*")
    san.set_multihost("src", True)
    clone, ops = san.clone_volume("src", "dst")
    assert ops == [LunOp("copy", clone.uid, src.lun_bytes, source_uid=src.uid)]
    assert clone.access == () and not clone.multihost and clone.iqn != src.iqn


def test_delete_removes_snapshots_too() -> None:
    san = San(group_name="g")
    vol, _ = san.create_volume("v", 100)
    snap, _ = san.create_snapshot("v", now=NOW)
    san.set_online("v", False)
    assert san.delete_volume("v") == [LunOp("delete", snap.uid), LunOp("delete", vol.uid)]


def test_access_ids_start_at_one_and_are_reused() -> None:
    san = San(group_name="g")
    san.create_volume("v", 100)
    assert [san.add_access("v", ipaddress="*.*.*.*").id for _ in range(3)] == [1, 2, 3]
    san.delete_access("v", 2)
    assert san.add_access("v", initiator="iqn.x").id == 2


@pytest.mark.parametrize(
    ("record", "initiators"),
    [
        pytest.param({"ipaddress": "*.*.*.*"}, None, id="any-ip"),
        pytest.param({"initiator": "*"}, None, id="any-initiator"),
        pytest.param({"ipaddress": "192.168.*.*"}, ("192.168.0.0/16",), id="wildcard-cidr"),
        pytest.param({"ipaddress": "10.1.2.3"}, ("10.1.2.3",), id="one-ip"),
        pytest.param({"ipaddress": "10.*.2.*"}, None, id="inner-wildcard-admits-all"),
        pytest.param(
            {"initiator": "iqn.1993-08.org.debian:01:ab"},
            ("iqn.1993-08.org.debian:01:ab",),
            id="initiator",
        ),
        pytest.param({"username": "bob", "authmethod": AuthMethod.CHAP}, None, id="chap-only"),
    ],
)
def test_access_records_become_target_acls(
    record: dict[str, object], initiators: tuple[str, ...] | None
) -> None:
    san = San(group_name="g")
    vol, _ = san.create_volume("v", 100)
    san.create_chap_user("bob", "bob-secret-123")
    san.add_access("v", **record)  # type: ignore[arg-type]
    spec = desired_targets(san)[vol.iqn]
    assert spec.initiators == initiators
    chap = record.get("authmethod") is AuthMethod.CHAP
    assert (spec.chap_user, spec.chap_password) == (("bob", "bob-secret-123") if chap else ("", ""))


def test_desired_targets_follow_status_and_apply_to() -> None:
    san = San(group_name="g")
    vol, _ = san.create_volume("v", 100)
    assert desired_targets(san) == {vol.iqn: TargetSpec(vol.iqn, vol.uid, ())}
    san.add_access("v", ipaddress="1.2.3.4", apply_to=ApplyTo.SNAPSHOT)
    snap, _ = san.create_snapshot("v", now=NOW)
    san.set_snapshot_online("v", snap.name, True)
    targets = desired_targets(san)
    assert targets[vol.iqn].initiators == ()
    assert targets[snap.iqn].initiators == ("1.2.3.4",)
    san.set_online("v", False)
    assert list(desired_targets(san)) == [snap.iqn]


def test_snapshot_names_are_unique_per_second() -> None:
    san = San(group_name="g")
    san.create_volume("v", 100)
    names = [san.create_snapshot("v", now=NOW)[0].name for _ in range(2)]
    assert names == ["v-2026-11-23-12:00:00.1", "v-2026-11-23-12:00:00.2"]


def test_rename_keeps_iqn() -> None:
    san = San(group_name="g")
    vol, _ = san.create_volume("v", 100)
    san.rename_volume("v", "w")
    assert san.volumes["w"].iqn == vol.iqn and "v" not in san.volumes


def test_settings_are_per_account() -> None:
    san = San(group_name="g")
    san.set_setting("a", "paging", False)
    assert not san.account_settings("a").paging
    assert san.account_settings("b").paging
