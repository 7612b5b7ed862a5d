"""``iscsiadm -m node`` on the stand-in: the listing preflight falls back to where
oneadmin cannot read /etc/iscsi/nodes (open-iscsi keeps it root-only), in open-iscsi's
``IP:PORT,TPGT IQN`` form, brackets around IPv6, 21 when there is no record."""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from rig.hosts import iscsiadm_standin as standin

IQN_A = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-one-7"
IQN_B = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-one-8"


@pytest.fixture
def db(standin_db: Path) -> Path:
    return standin_db


def _record(db: Path, iqn: str, portal_dir: str, iface: str = "default") -> None:
    rec = db / "nodes" / iqn / portal_dir / iface
    rec.parent.mkdir(parents=True, exist_ok=True)
    rec.write_text(f"node.name = {iqn}\n")


@pytest.mark.parametrize(
    ("records", "status", "lines"),
    [
        pytest.param([], ia.IscsiadmStatus.NO_OBJS_FOUND, [], id="none-is-21"),
        pytest.param([(IQN_A, "10.254.1.1,3260,1", "default")], 0,
                     [f"10.254.1.1:3260,1 {IQN_A}"], id="ipv4"),
        pytest.param([(IQN_B, "::1,3260,1", "default")], 0, [f"[::1]:3260,1 {IQN_B}"],
                     id="ipv6-bracketed"),
        pytest.param([(IQN_A, "10.254.1.1,3260,1", "default"),
                      (IQN_A, "10.254.1.1,3260,1", "eql00"),
                      (IQN_B, "10.254.1.2,3260,1", "default")], 0,
                     [f"10.254.1.1:3260,1 {IQN_A}", f"10.254.1.1:3260,1 {IQN_A}",
                      f"10.254.1.2:3260,1 {IQN_B}"], id="one-line-per-record"),
    ],
)  # fmt: skip
def test_node_listing(
    db: Path,
    capsys: pytest.CaptureFixture[str],
    records: list[tuple[str, str, str]],
    status: int,
    lines: list[str],
) -> None:
    for iqn, portal_dir, iface in records:
        _record(db, iqn, portal_dir, iface)
    assert standin.main(["-m", "node"]) == status
    out = capsys.readouterr()
    assert out.out.splitlines() == lines
    if status:
        assert "No records found" in out.err
