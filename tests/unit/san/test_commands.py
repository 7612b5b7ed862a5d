"""Command builders: exact CLI lines, and hostile values rejected before any I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.san import commands as c
from eqliscsi.san.errors import SanInvalidValue
from eqliscsi.secret import Secret

LINES = [
    pytest.param(
        c.VolumeCreate("one-7", 1024, pool="default", description="eqliscsi ds=100"),
        'volume create one-7 1024MB description "eqliscsi ds=100" online pool default',
        id="create",
    ),
    pytest.param(
        c.VolumeCreate("v", 10, thin=True, thin_min_reserve_pct=50),
        "volume create v 10MB online thin-provision thin-min-reserve 50%",
        id="create-thin",
    ),
    pytest.param(
        c.VolumeClone("src.1", "dst.2", description="eqliscsi ds=1"),
        'volume select src.1 clone dst.2 description "eqliscsi ds=1"',
        id="clone",
    ),
    pytest.param(c.VolumeDelete("v1"), "volume delete v1", id="delete"),
    pytest.param(c.VolumeRename("a", "b"), "volume rename a b", id="rename"),
    pytest.param(c.VolumeSetStatus("v", online=False), "volume select v offline", id="offline"),
    pytest.param(c.VolumeSetStatus("v", online=True), "volume select v online", id="online"),
    pytest.param(c.VolumeShow("v"), "volume select v show", id="show"),
    pytest.param(c.VolumeResize("v", 2048), "volume select v size 2048MB no-snap", id="resize"),
    pytest.param(
        c.VolumeMultihost("v", enable=True), "volume select v multihost-access enable", id="mh-on"
    ),
    pytest.param(
        c.VolumeMultihost("v", enable=False),
        "volume select v multihost-access disable",
        id="mh-off",
    ),
    pytest.param(
        c.AccessCreate("v", c.AccessRule(initiator="iqn.1993-08.org.debian:01:2227dab76162")),
        "volume select v access create initiator iqn.1993-08.org.debian:01:2227dab76162 "
        "authmethod none apply-to both",
        id="access-initiator",
    ),
    pytest.param(
        c.AccessCreate(
            "v", c.AccessRule(ipaddress="192.168.*.*", username="one", apply_to=c.ApplyTo.VOLUME)
        ),
        "volume select v access create ipaddress 192.168.*.* username one authmethod chap "
        "apply-to volume",
        id="access-ip-chap",
    ),
    pytest.param(
        c.AccessCreate("v", c.AccessRule(ipaddress="10.0.0.1", initiator="*")),
        "volume select v access create initiator * ipaddress 10.0.0.1 authmethod none "
        "apply-to both",
        id="access-any-initiator-ip",
    ),
    pytest.param(c.AccessShow("v"), "volume select v access show", id="access-show"),
    pytest.param(c.AccessDelete("v", 3), "volume select v access delete 3", id="access-delete"),
    pytest.param(c.SnapshotCreateNow("v"), "volume select v snapshot create-now", id="snap-create"),
    pytest.param(
        c.SnapshotRename("v", "v-2024-01-02-03:04:05.1", "snap-9"),
        "volume select v snapshot rename v-2024-01-02-03:04:05.1 snap-9",
        id="snap-rename",
    ),
    pytest.param(
        c.SnapshotClone("v", "snap-9", "w"),
        "volume select v snapshot select snap-9 clone w",
        id="snap-clone",
    ),
    pytest.param(
        c.SnapshotRestore("v", "snap-9"),
        "volume select v snapshot select snap-9 restore",
        id="snap-restore",
    ),
    pytest.param(
        c.SnapshotDelete("v", "snap-9"), "volume select v snapshot delete snap-9", id="snap-del"
    ),
    pytest.param(c.ChapUserCreate("one"), "chapuser create one", id="chap-create"),
    pytest.param(c.ChapUserShow("one"), "chapuser show one", id="chap-show"),
    pytest.param(c.ChapUserDelete("one"), "chapuser delete one", id="chap-delete"),
    pytest.param(c.PoolShow("default"), "pool select default show", id="pool-show"),
    pytest.param(c.ShowPool(), "show pool", id="show-pool"),
    pytest.param(c.GrpparamsShow(), "grpparams show", id="grpparams"),
    pytest.param(c.Stty(None), "stty hardwrap off", id="stty-hardwrap"),
    pytest.param(c.Stty(255), "stty columns 255", id="stty-columns"),
    pytest.param(c.CliSetting("paging"), "cli-settings paging off", id="paging"),
]


@pytest.mark.parametrize(("command", "line"), LINES)
def test_line(command: c.Command, line: str) -> None:
    assert command.line() == line
    assert command.display() == line


def test_session_setup_is_the_reference_set() -> None:
    assert [x.line() for x in c.session_setup()] == [
        "stty hardwrap off",
        "stty columns 255",
        "cli-settings paging off",
        "cli-settings confirmation off",
        "cli-settings events off",
        "cli-settings formatoutput off",
        "cli-settings reprintBadInput off",
    ]


def test_mutating_flags() -> None:
    assert c.VolumeCreate("v", 1).mutating
    assert c.VolumeDelete("v").mutating
    assert c.AccessCreate("v", c.AccessRule(initiator="*")).mutating
    assert not c.VolumeShow("v").mutating
    assert not c.PoolShow("p").mutating
    assert not c.AccessShow("v").mutating


def test_chap_password_is_sent_but_never_displayed() -> None:
    cmd = c.ChapUserCreate("one", Secret(b"s3cretPassw0rd!!"))
    assert cmd.line() == "chapuser create one password s3cretPassw0rd!!"
    assert "s3cret" not in cmd.display()
    assert "s3cret" not in repr(cmd)
    assert cmd.secrets() == (b"s3cretPassw0rd!!",)


HOSTILE_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param("a b", id="space"),
    pytest.param("a;delete", id="semicolon"),
    pytest.param('a"b', id="double-quote"),
    pytest.param("a'b", id="single-quote"),
    pytest.param("a\nvolume delete x", id="newline"),
    pytest.param("a\rb", id="cr"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("vol\u00e9", id="unicode"),
    pytest.param("vol\u2028x", id="unicode-line-sep"),
    pytest.param("a_b", id="underscore"),
    pytest.param("a:b", id="colon"),
    pytest.param("a/b", id="slash"),
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_volume_names_rejected(name: str) -> None:
    with pytest.raises(SanInvalidValue) as exc:
        c.VolumeDelete(name)
    # One sentence, naming the rule; the raw control characters are shown escaped.
    msg = str(exc.value)
    assert msg.startswith("The volume name ")
    assert "\n" not in msg and "\r" not in msg


def test_63_character_name_accepted() -> None:
    assert c.VolumeDelete("a" * 63).line() == "volume delete " + "a" * 63


HOSTILE_DESCRIPTIONS = [
    pytest.param('x" online unrestricted "', id="quote-breakout"),
    pytest.param("x' y", id="single-quote"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x1b[2Jb", id="escape"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a  b", id="double-space"),
    pytest.param("caf\u00e9", id="unicode"),
    pytest.param("x" * 128, id="too-long"),
]


@pytest.mark.parametrize("desc", HOSTILE_DESCRIPTIONS)
def test_hostile_descriptions_rejected(desc: str) -> None:
    with pytest.raises(SanInvalidValue):
        c.VolumeCreate("v", 10, description=desc)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(True, id="bool"),
        pytest.param("10", id="string"),
        pytest.param(10.5, id="float"),
        pytest.param(10**12, id="absurd"),
    ],
)
def test_bad_sizes_rejected(size: object) -> None:
    with pytest.raises(SanInvalidValue):
        c.VolumeResize("v", size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="empty-rule"),
        pytest.param({"initiator": "iqn.2000-01.x:y z"}, id="initiator-space"),
        pytest.param({"initiator": "foo"}, id="initiator-not-iqn"),
        pytest.param({"ipaddress": "256.1.1.1"}, id="ip-octet"),
        pytest.param({"ipaddress": "1.2.3"}, id="ip-short"),
        pytest.param({"ipaddress": "1.2.3.4 initiator *"}, id="ip-injection"),
        pytest.param({"ipaddress": "\u0661.2.3.4"}, id="ip-arabic-digit"),
        pytest.param({"ipaddress": "010.1.1.1"}, id="ip-leading-zero"),
        pytest.param({"ipaddress": "1.2.3.4."}, id="ip-trailing-dot"),
        pytest.param(
            {"initiator": "iqn.\u0661\u0662\u0663\u0664-01.x"}, id="initiator-arabic-digits"
        ),
        pytest.param({"username": "a b"}, id="user-space"),
        pytest.param({"username": "u" * 64}, id="user-long"),
    ],
)
def test_bad_access_rules_rejected(kwargs: dict[str, str]) -> None:
    with pytest.raises(SanInvalidValue):
        c.AccessRule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(b"short", id="short"),
        pytest.param(b"has a space in it", id="space"),
        pytest.param(b'quote"quote"quote', id="quote"),
        pytest.param(b"newline\nnewline!!", id="newline"),
    ],
)
def test_bad_chap_secrets_rejected_without_echo(secret: bytes) -> None:
    with pytest.raises(SanInvalidValue) as exc:
        c.ChapUserCreate("one", Secret(secret, origin="file /x"))
    assert secret.decode() not in str(exc.value)


def test_unknown_cli_setting_rejected() -> None:
    with pytest.raises(SanInvalidValue):
        c.CliSetting("idlelogout; volume delete x")


def _cli_words(line: str) -> list[str]:
    """How the array splits a line: whitespace, with double-quoted strings kept whole."""
    words: list[str] = []
    cur = ""
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            cur += ch
        elif ch.isspace() and not quoted:
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


_NAMEISH = st.one_of(st.from_regex(r"[A-Za-z0-9.-]{1,63}", fullmatch=True), st.text(max_size=70))
_DESCISH = st.one_of(st.from_regex(r"[ -~]{0,127}", fullmatch=True), st.text(max_size=140))


@given(name=_NAMEISH, desc=_DESCISH)
def test_no_value_adds_cli_words(name: str, desc: str) -> None:
    """Whatever passes validation stays exactly one CLI word in the line the array splits."""
    try:
        cmd = c.VolumeCreate(name, 10, description=desc)
    except SanInvalidValue:
        return
    words = _cli_words(cmd.line())
    assert words[:4] == ["volume", "create", name, "10MB"]
    assert words[4:6] == ["description", f'"{desc}"']
    assert words[6:] == ["online"]
    assert all(ch.isprintable() and ch.isascii() for ch in cmd.line())
