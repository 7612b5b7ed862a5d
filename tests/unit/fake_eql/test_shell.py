"""The fake shell's terminal dialect and every command, driven byte by byte in memory."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.fake_eql.faults import Faults
from rig.fake_eql.model import San
from rig.fake_eql.shell import PAGER_PROMPT, ApplyLuns, Close, Delay, EqlShell, Send, Stall
from tests.unit.fake_eql.conftest import GROUP, NOW, Term, text

IQN_RE = re.compile(
    r"^iSCSI target name is (iqn\.2001-05\.com\.equallogic:"
    r"0-8a0906-[0-9a-f]{9}-[0-9a-f]{16}-(?P<name>[a-z0-9.:-]+))\.$"
)


def test_banner_then_prompt_with_trailing_space(term: Term) -> None:
    assert "Welcome to Group Manager" in term.banner
    assert "Copyright 2001-2016 Dell Inc." in term.banner
    # events default on: the login event comes before the first prompt
    # (hard-wrapped at 80 columns like any other output line)
    assert "CLI: Login to account grpadmin succeeded" in term.banner.replace("\r\n", "")
    assert term.banner.endswith("\r\ngrp0> ")


@pytest.mark.parametrize("enter", [b"\r", b"\n", b"\r\n"], ids=["cr", "lf", "crlf"])
def test_each_line_ending_is_one_enter(qterm: Term, enter: bytes) -> None:
    out = qterm.feed(b"whoami" + enter + b"whoami" + enter)
    assert out == "whoami\r\ngrpadmin\r\ngrp0> whoami\r\ngrpadmin\r\ngrp0> "


def test_empty_line_reprints_prompt(qterm: Term) -> None:
    assert qterm.feed(b"\r") == "\r\ngrp0> "


def test_byte_by_byte_equals_whole(san: San) -> None:
    script = b"cli-settings paging off\r\nvol create v1 20\rvolume show\nvol sel v1 sh\r"
    whole = Term(san).feed(script)
    piecewise = Term(San(group_name=GROUP))
    got = "".join(piecewise.feed(bytes([b])) for b in script)
    assert got == whole
    assert "iSCSI target name is" in got


def test_backspace_and_ctrl_c_and_arrows(qterm: Term) -> None:
    assert qterm.feed(b"whoamx\x7fi") == "whoamx\b \bi"
    assert qterm.feed(b"\x1b[A\r") == "\r\ngrpadmin\r\ngrp0> "
    assert qterm.feed(b"vol\x03") == "vol^C\r\ngrp0> "


def test_create_prints_iqn_with_trailing_period(qterm: Term) -> None:
    lines = qterm.cmd("volume create Vol-1 10GB")
    assert lines[0] == "Volume creation succeeded."
    m = IQN_RE.match(lines[1])
    assert m, lines
    assert m["name"] == "vol-1"
    # OpenNebula's addon cuts the name at byte 37 after the colon (§7)
    assert m[1].split(":", 1)[1][36:] == "vol-1"
    # echo, then the data-plane work, then the reply: the LUN exists before the IQN is read
    assert [type(e) for e in qterm.events] == [Send, ApplyLuns, Send]


def test_default_settings_are_on_and_persist_per_account(san: San) -> None:
    a = Term(san, "grpadmin")
    shown = a.cmd("cli-settings show")
    assert "Paging: on" in " ".join(shown) and "Confirmation: on" in " ".join(shown)
    a.cmd("cli-settings paging off")
    a.cmd("cli-settings formatoutput off")
    b = Term(san, "grpadmin")  # a new session of the same account
    assert "Paging: off" in b.cmd("cli-settings show")
    c = Term(san, "other")
    assert "Paging: on" in " ".join(c.cmd("cli-settings show"))


# Every command, in a quiet session: (setup, command, expected reply lines or regex).
COMMANDS = [
    pytest.param([], "volume create v1 100", ["Volume creation succeeded.", IQN_RE], id="create"),
    pytest.param(
        [],
        "volume create v1 1G pool default thin-provision thin-min-reserve 50% "
        'description "two words" read-write online iscsi-alias al snap-reserve 0%',
        ["Volume creation succeeded.", IQN_RE],
        id="create-all-options",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume create v1 1G",
        ["% Error - Volume v1 already exists."],
        id="create-again",
    ),
    pytest.param(
        [],
        "volume create bad_name 1G",
        [re.compile(r"^% Error - Invalid volume name 'bad_name'")],
        id="bad-name",
    ),
    pytest.param(
        [],
        "volume create v1 12XB",
        ['% Error - Invalid size "12XB"; use a number with MB, GB or TB.'],
        id="bad-size",
    ),
    pytest.param(
        [],
        "volume create v1 1G pool nosuch",
        ["% Error - Pool nosuch does not exist."],
        id="no-pool",
    ),
    pytest.param(
        [],
        "volume create v1 20TB",
        [re.compile(r"^% Error - Not enough free space")],
        id="no-space",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume delete v1",
        [re.compile(r"^% Error - Volume v1 is online")],
        id="delete-online",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 offline"],
        "volume delete v1",
        ["Volume deletion succeeded."],
        id="delete",
    ),
    pytest.param(
        [], "volume delete nosuch", ["% Error - Volume nosuch does not exist."], id="delete-missing"
    ),
    pytest.param(["volume create v1 1G"], "volume rename v1 v2", [], id="rename"),
    pytest.param(["volume create v1 1G"], "volume select v1 offline", [], id="offline"),
    pytest.param(["volume create v1 1G"], "volume select v1 online", [], id="online"),
    pytest.param(
        ["volume create v1 1G"], "volume select v1 multihost-access enable", [], id="multihost"
    ),
    pytest.param(["volume create v1 1G"], "volume select v1 size 2G no-snap", [], id="grow"),
    pytest.param(
        ["volume create v1 1G"], "volume select v1 size no-snap 2048MB", [], id="grow-other-order"
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 size 512MB no-snap",
        [re.compile(r"^% Error - Volume v1 is online; set it offline")],
        id="shrink",
    ),
    pytest.param(
        ["volume create v1 1G"],
        'volume select v1 description "OpenStack Managed"',
        [],
        id="description",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 clone v2",
        ["Volume creation succeeded.", IQN_RE],
        id="clone",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 access create initiator iqn.1993-08.org.debian:01:ab "
        "authmethod chap username bob",
        ["Access control record created with ID 1."],
        id="access-create",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 access create ipaddress 10.*.*.*",
        ["Access control record created with ID 1."],
        id="access-ip",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 access create apply-to both",
        [re.compile(r"^% Error - Specify at least one")],
        id="access-empty",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 access create ipaddress *.*.*.*"],
        "volume select v1 access delete 1",
        [],
        id="access-delete",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 access delete 3",
        ["% Error - Access control record 3 does not exist."],
        id="access-delete-missing",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 access create ipaddress *.*.*.*"],
        "volume select v1 access select 1 show",
        [
            "ID: 1",
            "Initiator:",
            "IPAddress: *.*.*.*",
            "AuthMethod: none",
            "UserName:",
            "Apply-To: both",
        ],
        id="access-select-show",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 snapshot create-now",
        ["Snapshot creation succeeded.", "Snapshot name is v1-2026-11-23-12:34:56.1"],
        id="snapshot-create",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 snapshot create-now"],
        "volume select v1 snapshot delete v1-2026-11-23-12:34:56.1",
        ["Snapshot deletion succeeded."],
        id="snapshot-delete",
    ),
    pytest.param(
        ["volume create v1 1G"],
        "volume select v1 snapshot delete s9",
        ["% Error - Snapshot s9 does not exist."],
        id="snapshot-delete-missing",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 snapshot create-now"],
        "volume select v1 snapshot rename v1-2026-11-23-12:34:56.1 s1",
        [],
        id="snapshot-rename",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 snapshot create-now"],
        "volume select v1 snapshot select v1-2026-11-23-12:34:56.1 clone v2",
        ["Volume creation succeeded.", IQN_RE],
        id="snapshot-clone",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 snapshot create-now"],
        "volume select v1 snapshot select v1-2026-11-23-12:34:56.1 restore",
        [re.compile(r"^% Error - Volume v1 is online")],
        id="restore-online",
    ),
    pytest.param(
        ["volume create v1 1G", "volume select v1 snapshot create-now", "volume select v1 offline"],
        "volume select v1 snapshot select v1-2026-11-23-12:34:56.1 restore",
        [],
        id="restore",
    ),
    pytest.param([], "chapuser create bob password secret-secret-1", [], id="chap-create"),
    pytest.param(
        [],
        "chapuser create bob password short",
        [re.compile(r"^% Error - The CHAP password must be 12")],
        id="chap-short",
    ),
    pytest.param(
        [], "chapuser create bob", [re.compile(r"^Password is [0-9a-f]{16}$")], id="chap-generated"
    ),
    pytest.param(
        ["chapuser create bob password secret-secret-1"],
        "chapuser show bob",
        ["Name: bob", "Password: secret-secret-1", "Status: enable"],
        id="chap-show",
    ),
    pytest.param(
        ["chapuser create bob password secret-secret-1"],
        "chapuser delete bob",
        ["CHAP user deletion succeeded."],
        id="chap-delete",
    ),
    pytest.param(
        [],
        "chapuser delete bob",
        ["% Error - CHAP user bob does not exist."],
        id="chap-delete-missing",
    ),
    pytest.param(
        [],
        "grpparams show",
        [
            "_" * 30 + " Group Information " + "_" * 30,
            "Name: grp0",
            "Group-Ipaddress: 127.0.0.1",
            "Def-Snap-Reserve: 100%",
            "Def-Snap-Warn: 10%",
            "Def-Thin-Growth-Warn: 60%",
            "Def-Thin-Growth-Max: 100%",
            "Def-Iscsi-Prefix: iqn.2001-05.com.equallogic",
            "Def-Iscsi-Alias: yes",
            "Info-Messages: enabled",
            "Target-Auth-UserName:",
            "Description:",
        ],
        id="grpparams",
    ),
    pytest.param([], "grpparams info-messages disable", [], id="info-messages"),
    pytest.param([], "whoami", ["grpadmin"], id="whoami"),
    pytest.param([], "stty columns 255", [], id="stty-columns"),
    pytest.param(
        [],
        "stty columns 5",
        ["% Error - The columns value must be between 10 and 1024."],
        id="stty-bad",
    ),
    pytest.param(
        [], "frobnicate", ['% Error - Invalid command or parameter "frobnicate".'], id="unknown"
    ),
    pytest.param([], "s", ['% Error - Ambiguous command or parameter "s".'], id="ambiguous"),
    pytest.param(
        [], "volume", ["% Error - Incomplete command; a parameter is missing."], id="incomplete"
    ),
    pytest.param(
        [], "whoami now", ['% Error - Too many parameters, starting at "now".'], id="extra"
    ),
    pytest.param(
        [], 'volume create "v1 1G', ["% Error - Unterminated quoted string."], id="open-quote"
    ),
    pytest.param(["volume create v1 1G"], "vol sel v1 multi en", [], id="abbreviations"),
]


@pytest.mark.parametrize(("setup", "command", "expected"), COMMANDS)
def test_commands(qterm: Term, setup: list[str], command: str, expected: list[object]) -> None:
    for line in setup:
        assert not any(x.startswith("% Error") for x in qterm.cmd(line)), line
    before = qterm.shell.san.generation
    lines = qterm.cmd(command)
    assert len(lines) == len(expected), lines
    for got, want in zip(lines, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.match(got), (got, want.pattern)
        else:
            assert got == want
    if lines and lines[0].startswith("% Error"):
        assert qterm.shell.san.generation == before  # an error changes nothing


def test_tables(qterm: Term) -> None:
    qterm.cmd("volume create a-lun-with-a-very-long-lun-name 100")
    qterm.cmd("volume create thin1 1G thin-provision")
    assert qterm.cmd("volume show") == [
        "Name            Size       SnapShots Status         Permission Connections T",
        "--------------- ---------- --------- -------------- ---------- ----------- -",
        "a-lun-with-a-ve 100MB      0         online         read-write 0           N",
        "  ry-long-lun-n",
        "  ame",
        "thin1           1GB        0         online         read-write 0           Y",
    ]
    assert qterm.cmd("show volume") == qterm.cmd("volume show")
    pool = qterm.cmd("pool select default show")
    for want in (
        "TotalCapacity: 10TB",
        "VolumeReserve: 210MB",
        "VolumeReportedSpace: 1.11GB",
        "TotalVolumes: 2",
    ):
        assert want in pool
    assert qterm.cmd("show pool")[2].split() == ["default", "true", "1", "2", "10TB", "10TB"]


def test_volume_show_fields_and_units(qterm: Term) -> None:
    qterm.cmd("volume create v1 1G")
    lines = qterm.cmd("volume select v1 show")
    assert lines[0] == "_" * 29 + " Volume Information " + "_" * 30
    assert lines[1:4] == ["Name: v1", "Size: 1GB", "VolReserve: 1.01GB"]
    assert lines[7].startswith("iSCSI Name: iqn.2001-05.com.equallogic:0-8a0906-")
    assert "Description:" in lines and "Status: online" in lines
    qterm.cmd("cli-settings displayinMB on")
    assert "VolReserve: 1035MB" in qterm.cmd("volume show v1")


def test_formatoutput_on_pairs_two_per_line(term: Term) -> None:
    term.cmd("cli-settings paging off")
    lines = term.cmd("cli-settings show")
    assert lines[0] == "Confirmation: on".ljust(40) + "DisplayInMB: off"
    assert len(lines) == 4


def test_submode_prompt_and_exit(qterm: Term) -> None:
    qterm.cmd("volume create v1 1G")
    assert qterm.feed(b"volume select v1\r") == "volume select v1\r\ngrp0(volume_v1)> "
    assert qterm.cmd("show")[1] == "Name: v1"
    assert qterm.cmd("offline") == []
    assert qterm.cmd("access create ipaddress *.*.*.*") == [
        "Access control record created with ID 1."
    ]
    assert qterm.feed(b"exit\r") == "exit\r\ngrp0> "
    assert not qterm.shell.san.volumes["v1"].online


def test_confirmation_yes_no(san: San) -> None:
    t = Term(san)
    t.cmd("cli-settings events off")
    t.cmd("volume create v1 1G")
    t.cmd("volume select v1 offline")
    out = t.feed(b"volume delete v1\r")
    assert out.endswith(
        "Do you really want to delete the volume and destroy 1GB of data? (y/n) [n] "
    )
    assert t.feed(b"n\r") == "n\r\ngrp0> "
    assert "v1" in san.volumes
    t.feed(b"volume delete v1\r")
    assert t.feed(b"y\r") == "y\r\nVolume deletion succeeded.\r\ngrp0> "
    assert "v1" not in san.volumes


def test_logout_confirmation_and_close(term: Term) -> None:
    assert term.feed(b"logout\r").endswith("Do you really want to logout? (y/n) [n] ")
    term.feed(b"y\r")
    assert isinstance(term.events[-1], Close) and term.shell.closed


def test_logout_without_confirmation(qterm: Term) -> None:
    qterm.feed(b"exit\r")
    assert qterm.events[-1] == Close(0)


def test_paging_pauses_continues_and_quits(san: San) -> None:
    t = Term(san)
    t.cmd("cli-settings formatoutput off")
    t.cmd("cli-settings events off")
    t.cmd("volume create v1 1G")
    out = t.feed(b"volume select v1 show\r")
    body = out.split("\r\n")
    assert body[-1] == PAGER_PROMPT and len(body) == 1 + 23 + 1  # echo, a screenful, pager
    rest = t.feed(b" ")
    assert rest.startswith("\r" + " " * len(PAGER_PROMPT) + "\r")
    assert rest.endswith("grp0> ") and "MultiHostAccess: disabled" in rest
    t.feed(b"volume select v1 show\r")
    assert t.feed(b"q") == "\r" + " " * len(PAGER_PROMPT) + "\rgrp0> "


@pytest.mark.parametrize(
    ("stty", "width"),
    [
        pytest.param(None, 80, id="default-80"),
        pytest.param("stty columns 40", 40, id="columns-40"),
        pytest.param("stty hardwrap off", None, id="hardwrap-off"),
    ],
)
def test_hard_wrap(san: San, stty: str | None, width: int | None) -> None:
    t = Term(san)
    t.quiet(wide=False)
    if stty:
        t.cmd(stty)
    name = "n" * 63
    t.cmd(f"volume create {name} 1G")
    full = f"iSCSI Name: {san.volumes[name].iqn}"
    assert len(full) == 138
    lines = t.cmd(f"volume show {name}")
    start = lines.index(full[: width or len(full)])
    cut = width or len(full)
    expected = [full[i : i + cut] for i in range(0, len(full), cut)]
    assert lines[start : start + len(expected)] == expected
    assert lines[start + len(expected)].startswith("ActualMembers:")


def test_window_size_and_stty_precedence(san: San) -> None:
    t = Term(san, columns=100, rows=50)
    t.quiet(wide=False)
    assert t.shell.session.columns == 100
    t.shell.resize(120, 40)
    assert t.shell.session.columns == 120
    t.cmd("stty columns 255")
    t.shell.resize(90, 40)
    assert t.shell.session.columns == 255  # stty wins over later window changes


@pytest.mark.parametrize("reprint", [True, False], ids=["reprint-on", "reprint-off"])
def test_reprint_bad_input(san: San, reprint: bool) -> None:
    t = Term(san)
    t.cmd("cli-settings paging off")
    if not reprint:
        t.cmd("cli-settings reprintBadInput off")
    out = t.feed(b"volume frob\r")
    tail = "grp0> volume frob" if reprint else "grp0> "
    assert out == f'volume frob\r\n% Error - Invalid command or parameter "frob".\r\n{tail}'
    # Typing on appends to the reprinted text, as Cinder bug 1378394 describes.
    out = t.feed(b" x\r")
    assert ("% Error" in out) if reprint else out.startswith(" x\r\n% Error")


def test_semantic_errors_are_not_reprinted(term: Term) -> None:
    term.cmd("cli-settings paging off")
    assert term.feed(b"volume delete nosuch\r").endswith("does not exist.\r\ngrp0> ")


def test_event_lines(term: Term) -> None:
    term.cmd("cli-settings paging off")
    term.cmd("stty columns 255")
    lines = term.cmd("volume create v1 1G")
    assert (
        lines[2]
        == f"netmgtd:{NOW.timestamp():.2f}:rcc_util.c:1024:INFO:25.2.9:Volume 'v1' was created."
    )
    term.cmd("cli-settings events off")
    assert len(term.cmd("volume create v2 1G")) == 2


def test_resize_without_no_snap_takes_a_snapshot(qterm: Term) -> None:
    qterm.cmd("volume create v1 1G")
    qterm.cmd("volume select v1 size 2G")
    assert len(qterm.shell.san.volumes["v1"].snapshots) == 1
    ops = [op.kind for e in qterm.events if isinstance(e, ApplyLuns) for op in e.ops]
    assert ops == ["copy", "resize"]


# -- faults ----------------------------------------------------------------------------


def test_latency_comes_before_the_reply(qterm: Term) -> None:
    qterm.faults = Faults(latency=0.25)
    qterm.feed(b"whoami\r")
    kinds = [type(e).__name__ for e in qterm.events]
    assert kinds == ["Send", "Delay", "Send"] and qterm.events[1] == Delay(0.25)


@pytest.mark.parametrize(
    ("faults", "command"),
    [
        pytest.param(Faults(drop_after=0), "whoami", id="drop-after-0"),
        pytest.param(Faults(drop_at="volume delete"), "vol del v1", id="drop-at-abbreviated"),
        pytest.param(
            Faults(drop_at="volume select offline"), "volume select v1 offline", id="drop-at-path"
        ),
    ],
)
def test_drop(qterm: Term, faults: Faults, command: str) -> None:
    qterm.cmd("volume create v1 1G")
    qterm.faults = faults
    out = qterm.feed(command.encode() + b"\r")
    assert out == command + "\r\n"
    assert qterm.events[-1] == Close(1) and qterm.shell.closed
    assert qterm.shell.san.volumes["v1"].online  # the dropped command did not run


def test_drop_after_counts_commands(qterm: Term) -> None:
    qterm.faults = Faults(drop_after=qterm.shell.commands_run + 1)
    assert qterm.cmd("whoami") == ["grpadmin"]
    qterm.feed(b"whoami\r")
    assert qterm.shell.closed


def test_stall_and_injected_error(qterm: Term) -> None:
    qterm.faults = Faults(error_at="volume create", error_text="Injected.")
    assert qterm.cmd("volume create v1 1G") == ["% Error - Injected."]
    assert qterm.shell.san.volumes == {}
    qterm.faults = Faults(stall_at="whoami")
    qterm.feed(b"whoami\r")
    assert isinstance(qterm.events[-1], Stall)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    shell = EqlShell(San(group_name=GROUP), "grpadmin", clock=lambda: NOW)
    shell.start()
    out = text(shell.feed(data))
    assert isinstance(out, str)


_WORDS = st.sampled_from(
    [
        "volume", "vol", "create", "delete", "select", "show", "sh", "offline", "online",
        "v1", "v2", "s", "10", "1G", "size", "no-snap", "clone", "access", "snapshot",
        "create-now", "restore", "multihost-access", "enable", "initiator", "iqn.x:y",
        "ipaddress", "*.*.*.*", "1", "chapuser", "bob", "password", "secret-secret-1",
        "cli-settings", "paging", "confirmation", "off", "on", "stty", "columns", "80",
        "pool", "default", "exit", "y", "n", '"a b"', "rename",
    ]
)  # fmt: skip


@given(st.lists(st.lists(_WORDS, min_size=1, max_size=7), max_size=25))
def test_random_sessions_keep_the_model_consistent(lines: list[list[str]]) -> None:
    san = San(group_name=GROUP)
    shell = EqlShell(san, "grpadmin", clock=lambda: NOW)
    shell.start()
    for words in lines:
        if shell.closed:
            break
        shell.feed(" ".join(words).encode() + b"\r" + b" ")  # the blank answers a pager
        for name, vol in san.volumes.items():
            assert vol.name == name
            assert len({r.id for r in vol.access}) == len(vol.access)
        for pool in san.pools:
            assert san.pool_free_mb(pool) >= 0
