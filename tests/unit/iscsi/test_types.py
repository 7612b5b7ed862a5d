from __future__ import annotations

import pytest

import eqliscsi.iscsi_discovery as pkg
import eqliscsi.iscsi_discovery.errors as errors_mod
import eqliscsi.iscsi_discovery.sansio as sansio
from eqliscsi.errors import ExitCode, IscsiError
from eqliscsi.iscsi_discovery import Auth, ChapAlgorithm, ChapCredentials, Portal
from eqliscsi.iscsi_discovery._types import check_iscsi_name
from eqliscsi.iscsi_discovery.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    ChapPolicyError,
    InitiatorError,
    InvalidIscsiName,
    InvalidPortal,
    LoginFailed,
    OutOfResources,
    TargetError,
    TargetNotFound,
    login_error_for,
)
from eqliscsi.secret import Secret


@pytest.mark.parametrize(
    ("text", "portal", "rendered"),
    [
        pytest.param("127.0.0.1", Portal("127.0.0.1", 3260), "127.0.0.1:3260", id="ipv4-bare"),
        pytest.param("127.0.0.1:3261", Portal("127.0.0.1", 3261), "127.0.0.1:3261", id="ipv4-port"),
        pytest.param("10.0.0.5:3260,1", Portal("10.0.0.5", 3260, 1), "10.0.0.5:3260,1", id="tpgt"),
        pytest.param("[::1]:3260,1", Portal("::1", 3260, 1), "[::1]:3260,1", id="ipv6-full"),
        pytest.param("[fe80::1]", Portal("fe80::1"), "[fe80::1]:3260", id="ipv6-noport"),
        pytest.param(
            "san.example.com:3262",
            Portal("san.example.com", 3262),
            "san.example.com:3262",
            id="dns",
        ),
        pytest.param(
            "eql-group,1", Portal("eql-group", 3260, 1), "eql-group:3260,1", id="dns-tpgt"
        ),
    ],
)
def test_portal_parse_and_render(text: str, portal: Portal, rendered: str) -> None:
    parsed = Portal.parse(text)
    assert parsed == portal
    assert str(parsed) == rendered
    assert Portal.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("::1", id="ipv6-unbracketed"),
        pytest.param("[::1", id="unclosed"),
        pytest.param("[::1]x", id="junk-after-bracket"),
        pytest.param("[host]:1", id="bracketed-name"),
        pytest.param("host:0", id="port-zero"),
        pytest.param("host:70000", id="port-big"),
        pytest.param("host:-1", id="port-negative"),
        pytest.param("host:12a", id="port-junk"),
        pytest.param("host,abc", id="tpgt-junk"),
        pytest.param("a b:3260", id="space"),
        pytest.param("$(reboot)", id="shell"),
        pytest.param("host\n", id="trailing-newline"),
        pytest.param("host:3260,70000", id="tpgt-big"),
    ],
)
def test_portal_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidPortal) as info:
        Portal.parse(text)
    assert info.value.exit_code == ExitCode.USAGE


def test_auth_policy() -> None:
    a = ChapCredentials("alice", Secret(b"initiator-secret"))
    b = ChapCredentials("tgt", Secret(b"initiator-secret"))
    with pytest.raises(ChapPolicyError, match="equals the initiator secret"):
        Auth(chap=a, mutual=b)
    with pytest.raises(ChapPolicyError, match="needs the initiator"):
        Auth(mutual=a)
    with pytest.raises(ChapPolicyError, match="empty"):
        Auth(chap=a, algorithms=())
    with pytest.raises(ChapPolicyError, match="repeats"):
        Auth(chap=a, algorithms=(ChapAlgorithm.MD5, ChapAlgorithm.MD5))
    with pytest.raises(ChapPolicyError, match="longer than 255"):
        ChapCredentials("alice", Secret(b"x" * 256))
    with pytest.raises(ChapPolicyError):
        ChapCredentials("al ice", Secret(b"x" * 16))
    with pytest.raises(ChapPolicyError):
        ChapCredentials("alice\n", Secret(b"x" * 16))
    assert "initiator-secret" not in repr(Auth(chap=a))


@pytest.mark.parametrize(
    ("cls_detail", "expected"),
    [
        pytest.param((2, 0), InitiatorError, id="0200"),
        pytest.param((2, 1), AuthenticationFailed, id="0201"),
        pytest.param((2, 2), AuthorizationFailed, id="0202"),
        pytest.param((2, 3), TargetNotFound, id="0203"),
        pytest.param((3, 1), TargetNotFound, id="0301-lio-unknown-target"),
        pytest.param((3, 2), OutOfResources, id="0302"),
        pytest.param((2, 0x7F), InitiatorError, id="unknown-class2"),
        pytest.param((3, 0x7F), TargetError, id="unknown-class3"),
        pytest.param((9, 9), LoginFailed, id="unknown-class"),
    ],
)
def test_login_error_mapping(cls_detail: tuple[int, int], expected: type[LoginFailed]) -> None:
    err = login_error_for(*cls_detail, Portal("127.0.0.1"), "alice", "iqn.2026-01.test:t1")
    assert type(err) is expected
    assert err.status == (cls_detail[0] << 8) | cls_detail[1]
    msg = str(err)
    # one sentence naming the portal and saying what to do
    assert "127.0.0.1:3260" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")


def test_authentication_failed_message() -> None:
    err = login_error_for(2, 1, Portal("10.1.1.1"), "alice")
    assert str(err) == (
        "CHAP authentication failed for user alice at portal 10.1.1.1:3260 "
        "(status 0x0201); check the CHAP user and secret."
    )


@pytest.mark.parametrize(
    "name",
    [
        "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-vol1",
        "iqn.2026-01.test:t1",
        "iqn.1991-05.com.microsoft:Host_01",
        "eui.02004567A425678D",
        "naa.52004567BA64678D",
        "naa.62004567BA64678D0123456789ABCDEF",
        "iqn.2026-01.x:" + "a" * 208,
    ],
)
def test_iscsi_names_accepted(name: str) -> None:
    assert check_iscsi_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("iqn.2026-01.x:" + "a" * 210, id="too-long"),
        pytest.param("iqn.26-01.test:t", id="bad-date"),
        pytest.param("iqn.2026-01.test:t 1", id="space"),
        pytest.param("iqn.2026-01.test:t;reboot", id="shell"),
        pytest.param("iqn.2026-01.test:t\n", id="newline"),
        pytest.param("eui.02004567A425678", id="eui-short"),
        pytest.param("naa.1234", id="naa-short"),
        pytest.param("IQN.2026-01.test:t", id="prefix-case"),
        pytest.param("SendTargets=All", id="text-key"),
    ],
)
def test_iscsi_names_rejected(name: str) -> None:
    with pytest.raises(InvalidIscsiName) as info:
        check_iscsi_name(name, "target name")
    assert info.value.exit_code == ExitCode.USAGE


def test_public_surface_resolves() -> None:

    for mod in (pkg, sansio, errors_mod):
        for name in mod.__all__:
            assert getattr(mod, name) is not None, name
    for name in errors_mod.__all__:
        obj = getattr(errors_mod, name)
        if isinstance(obj, type):
            assert issubclass(obj, IscsiError), name
