"""The stand-in's ifaces behave as open-iscsi 2.1.8's did in the kernel guest.

Every expected status here was measured on the real iscsiadm (see
tests/integration/host_net_cases.py, whose bodies run on both); these checks run the
stand-in's ``main`` against a node database in a temporary directory, no network.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from rig.hosts import iscsiadm_standin as standin

S = ia.IscsiadmStatus
IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-one-7"
PORTAL = ia.TargetPortal("10.254.1.1", 3260)


@pytest.fixture
def db(standin_db: Path) -> Path:
    return standin_db


def iface_argv(name: str, *op: str) -> list[str]:
    return ["-m", "iface", "-I", name, "--op", *op]


# (step, argv, expected status): one admin's session with iface "eql00", in order.
ADMIN_STEPS = [
    ("new", iface_argv("eql00", "new"), 0),
    ("new-again", iface_argv("eql00", "new"), S.SESS_EXISTS),
    ("bind", iface_argv("eql00", "update", "-n", "iface.net_ifacename", "-v", "eth0"), 0),
    ("delete", iface_argv("eql00", "delete"), 0),
    ("delete-again", iface_argv("eql00", "delete"), S.INVAL),
    ("bind-absent", iface_argv("eql00", "update", "-n", "iface.net_ifacename", "-v", "eth0"),
     S.INVAL),
    ("new-default", iface_argv("default", "new"), S.INVAL),
]  # fmt: skip


def test_iface_admin_statuses(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for step, argv, status in ADMIN_STEPS:
        assert standin.main(argv) == status, step
        if step == "bind":
            text = (db / "ifaces" / "eql00").read_text()
            assert "iface.iscsi_ifacename = eql00\n" in text
            assert "iface.net_ifacename = eth0\n" in text
    assert not (db / "ifaces" / "eql00").exists()
    assert "Could not read iface info for eql00" in capsys.readouterr().err


def _record(db: Path, iface: str) -> Path:
    path = db / "nodes" / IQN / f"{PORTAL.address},{PORTAL.port},1" / iface
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standin._new_record(IQN, PORTAL, 1, iface))
    return path


NODE_OPS = [
    pytest.param(ia.login_argv, id="login"),
    pytest.param(ia.logout_argv, id="logout"),
    pytest.param(ia.node_delete_argv, id="delete"),
]


@pytest.mark.parametrize("build", NODE_OPS)
def test_node_operation_through_an_absent_iface_exits_3(
    db: Path, build: Callable[[ia.Node], tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    _record(db, "default")
    argv = build(ia.Node(IQN, PORTAL, "eqlnone"))
    assert standin.main(argv[1:]) == S.NOMEM
    assert "Could not read iface info for eqlnone." in capsys.readouterr().err
    assert _record(db, "default").is_file()


@pytest.mark.parametrize(
    ("iface_file", "status", "message"),
    [
        pytest.param(None, S.NO_OBJS_FOUND, "Could not read iface info for eql00", id="absent"),
        pytest.param("eqlnonic0", S.PDU_TIMEOUT, "Could not bind connection 0 to eqlnonic0",
                     id="bound-to-absent-nic"),
    ],
)  # fmt: skip
def test_discovery_through_an_unusable_iface(
    db: Path,
    iface_file: str | None,
    status: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Both fail before any connection is tried (the NIC check is the host's).
    if iface_file is not None:
        (db / "ifaces" / "eql00").write_text(standin._iface_record("eql00", iface_file))
    assert standin.main(list(ia.discovery_argv(PORTAL, "eql00"))[1:]) == status
    assert message in capsys.readouterr().err
    assert not (db / "nodes").exists()


def test_iface_delete_takes_its_records_and_refuses_while_a_session_uses_it(
    db: Path, tmp_path: Path
) -> None:
    assert standin.main(iface_argv("eql00", "new")) == 0
    mine, other = _record(db, "eql00"), _record(db, "default")
    session = standin.Session(1, IQN, PORTAL.address, PORTAL.port, 1, "eql00", 0, "", "", None)
    sessions = tmp_path / "state" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "1.json").write_text(json.dumps(dataclasses.asdict(session)))
    assert standin.main(iface_argv("eql00", "delete")) == S.SESS_EXISTS
    assert mine.is_file()
    (sessions / "1.json").unlink()
    assert standin.main(iface_argv("eql00", "delete")) == 0
    assert not mine.exists()
    assert other.is_file()


@pytest.mark.parametrize(
    ("op", "status", "error"),
    [
        pytest.param(ia.Op.DISCOVERY, 21, ia.IscsiadmNoRecordsError, id="discovery-21"),
        pytest.param(ia.Op.LOGIN, S.NOMEM, ia.IscsiadmError, id="login-3"),
        pytest.param(ia.Op.LOGOUT, S.NOMEM, ia.IscsiadmError, id="logout-3"),
        pytest.param(ia.Op.DELETE, S.NOMEM, ia.IscsiadmError, id="delete-3"),
    ],
)
def test_driver_names_eql_iface_for_the_statuses_of_an_unreadable_iface(
    op: ia.Op, status: int, error: type[ia.IscsiadmError]
) -> None:
    # What the driver tells the admin when open-iscsi answers as it does for a missing
    # iface (the statuses above): one sentence that points at EQL_IFACE.
    with pytest.raises(error) as exc:
        ia.check_status(op, status, host="h1", what="one-7")
    text = str(exc.value)
    assert "EQL_IFACE" in text and "on h1" in text and "one-7" in text
    assert text.count(". ") == 0 and text.endswith(".")
    assert "nomem" not in text
