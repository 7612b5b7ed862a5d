"""The iscsiadm stand-in accepts exactly what the driver builds."""

from __future__ import annotations

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from rig.hosts import iscsiadm_standin as standin

IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-one-7"
NODE = ia.Node(IQN, ia.TargetPortal("10.254.1.1", 3261), "eql0")


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        pytest.param(ia.discovery_argv(NODE.portal, "eql0"), "discovery", id="discovery"),
        pytest.param(ia.login_argv(NODE), "login", id="login"),
        pytest.param(ia.logout_argv(NODE), "logout", id="logout"),
        pytest.param(ia.node_delete_argv(NODE), "delete", id="delete"),
        pytest.param(ia.session_argv(), "session", id="session"),
        pytest.param(ia.login_argv(ia.Node(IQN, ia.TargetPortal("fd00::1"))), "login",
                     id="login-ipv6"),
    ],
)  # fmt: skip
def test_accepts_every_builder_form(argv: tuple[str, ...], kind: str) -> None:
    cmd = standin.parse_argv(argv[1:])
    assert cmd.kind == kind
    if kind not in ("session", "discovery"):
        assert cmd.iqn == IQN


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="empty"),
        pytest.param(["-m", "discovery", "-t", "st", "-p", "10.0.0.1"], id="old-discovery"),
        pytest.param(["-m", "node", "-T", IQN, "-p", "10.254.1.1:3261", "-l"], id="short-login"),
        pytest.param(["-m", "node", "-T", IQN, "-p", "10.254.1.1:3261", "-I", "eql0", "-o",
                      "update", "-n", "node.session.auth.password", "-v", "x"], id="update"),
        pytest.param(["-m", "node", "-T", IQN, "-p", "host.example:3260", "-I", "eql0",
                      "--login"], id="hostname-portal"),
        pytest.param(["-m", "node", "-T", "x;id", "-p", "10.0.0.1:3260", "-I", "eql0",
                      "--login"], id="hostile-iqn"),
        pytest.param(["-m", "session", "-P", "3"], id="session-print-level"),
        pytest.param([*ia.login_argv(NODE)[1:], "--extra"], id="trailing"),
    ],
)  # fmt: skip
def test_rejects_other_forms(argv: list[str]) -> None:
    with pytest.raises(standin.Exit) as exc:
        standin.parse_argv(argv)
    assert exc.value.status == ia.IscsiadmStatus.INVAL


def test_main_reports_unknown_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert standin.main(["-m", "fw"]) == ia.IscsiadmStatus.INVAL
    assert "does not implement" in capsys.readouterr().err
