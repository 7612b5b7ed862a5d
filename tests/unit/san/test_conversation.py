"""The sans-IO CLI conversation, fed whole, byte by byte and in odd chunks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.san import commands as c
from eqliscsi.san.conversation import (
    CliConversation,
    Closed,
    CommandCompleted,
    ConvState,
    Event,
    Ready,
)
from eqliscsi.san.errors import SanConnectionError, SanProtocolError
from eqliscsi.secret import Secret

# §2.4: the console transcript's banner, with an event line before the first prompt.
BANNER = (
    b"\r\n           Welcome to Group Manager\r\n\r\n"
    b"        Copyright 2001-2014 Dell Inc.\r\n\r\n\r\n"
    b"netmgtd:1700722419.77:rcc_util.c:1024:INFO:25.2.9:CLI: Login to account grpadmin "
    b"succeeded, using lo.\r\n"
    b"group-0> "
)
IQN = "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-centos-test"


def feed(conv: CliConversation, data: bytes, mode: str) -> list[Event]:
    """Feed ``data`` whole, byte by byte, or in 7-byte chunks; collect the events."""
    if mode == "whole":
        chunks = [data]
    elif mode == "bytes":
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    events: list[Event] = []
    for chunk in chunks:
        conv.receive_data(chunk)
        while (ev := conv.next_event()) is not None:
            events.append(ev)
    return events


MODES = ["whole", "bytes", "chunks"]


def logged_in() -> CliConversation:
    conv = CliConversation()
    feed(conv, BANNER, "whole")
    assert conv.state is ConvState.READY
    return conv


@pytest.mark.parametrize("mode", MODES)
def test_login_banner(mode: str) -> None:
    conv = CliConversation()
    events = feed(conv, BANNER, mode)
    assert len(events) == 1
    ready = events[0]
    assert isinstance(ready, Ready)
    assert ready.group == "group-0"
    assert "           Welcome to Group Manager" in ready.banner
    assert not any("netmgtd" in line for line in ready.banner)


ROUND_TRIPS = [
    pytest.param(
        c.VolumeDelete("vol1"),
        b"volume delete vol1\r\nVolume deletion succeeded.\r\ngroup-0> ",
        ("Volume deletion succeeded.",),
        None,
        id="delete",
    ),
    pytest.param(
        c.VolumeSetStatus("vol1", online=False),
        b"volume select vol1 offline\r\ngroup-0> ",
        (),
        None,
        id="silent-success",
    ),
    pytest.param(
        c.VolumeSetStatus("nosuch", online=False),
        b"volume select nosuch offline\r\n% Error - Volume does not exist.\r\ngroup-0> ",
        ("% Error - Volume does not exist.",),
        "% Error - Volume does not exist.",
        id="error",
    ),
    pytest.param(
        c.VolumeCreate("centos-test", 1024),
        b"volume create centos-test 1024MB online\r\nVolume creation succeeded.\r\n"
        b"netmgtd:1700722420.01:vol.c:99:INFO:1.2.3:Volume created.\r\n"
        b"iSCSI target name is " + IQN.encode() + b".\r\ngroup-0> ",
        ("Volume creation succeeded.", f"iSCSI target name is {IQN}."),
        None,
        id="event-line-inside-output",
    ),
    pytest.param(
        c.VolumeShow("v"),
        # Echo hard-wrapped at 10 columns, ANSI noise, then output.
        b"volume sel\r\nect v show\r\n\x1b[KName: v\r\ngroup-0> ",
        ("Name: v",),
        None,
        id="wrapped-echo",
    ),
    pytest.param(
        c.VolumeShow("v"),
        b"volume select v show\r\nName: v\r\nPress any key to continue (Q to quit)"
        b"\r\x1b[KSize: 1GB\r\ngroup-0> ",
        ("Name: v", "Size: 1GB"),
        None,
        id="paging",
    ),
    pytest.param(
        c.VolumeShow("v"),
        b"volume select v show\r\nName: v\r\ngroup-0(volume_v)> ",
        ("Name: v",),
        None,
        id="sub-mode-prompt",
    ),
]


def _state(conv: CliConversation) -> ConvState:
    # A call, not an attribute read: mypy would otherwise keep the narrowed state
    # from one assertion through the feed() that changes it.
    return conv.state


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("command", "reply", "lines", "error"), ROUND_TRIPS)
def test_round_trip(
    command: c.Command, reply: bytes, lines: tuple[str, ...], error: str | None, mode: str
) -> None:
    conv = logged_in()
    assert conv.send_command(command) == (command.line() + "\r").encode()
    assert _state(conv) is ConvState.RUNNING
    events = feed(conv, reply, mode)
    assert len(events) == 1
    done = events[0]
    assert isinstance(done, CommandCompleted)
    assert done.command == command
    assert done.lines == lines
    assert done.error == error
    assert conv.state is ConvState.READY


def test_paging_prompt_is_answered_with_space() -> None:
    conv = logged_in()
    conv.send_command(c.PoolShow("default"))
    conv.receive_data(b"pool select default show\r\nTotalCapacity: 1TB\r\n")
    assert conv.data_to_send() == b""
    conv.receive_data(b"Press any key to continue (Q to quit)")
    assert conv.data_to_send() == b" "
    assert conv.next_event() is None


def test_confirmation_is_answered_yes() -> None:
    conv = logged_in()
    conv.send_command(c.VolumeDelete("v"))
    conv.receive_data(
        b"volume delete v\r\nDo you really want to delete the volume and destroy 1GB of data? "
        b"(y/n) [n]"
    )
    assert conv.data_to_send() == b"y\r"
    conv.receive_data(b"y\r\nVolume deletion succeeded.\r\ngroup-0> ")
    done = conv.next_event()
    assert isinstance(done, CommandCompleted)
    assert done.error is None


def test_reprinted_bad_input_is_reported() -> None:
    # Bug 1378394: after bad input the array reprints "GROUP> <bad cmd>".
    conv = logged_in()
    conv.send_command(c.VolumeShow("v"))
    conv.receive_data(b"volume select v show\r\n% Error - Bad command.\r\ngroup-0> volume sel")
    done = conv.next_event()
    assert isinstance(done, CommandCompleted)
    assert done.error == "% Error - Bad command."
    assert done.reprinted == "volume sel"


def test_other_group_prompt_is_not_a_prompt() -> None:
    conv = CliConversation(group="group-0")
    conv.receive_data(b"banner\r\nother> ")
    assert conv.next_event() is None
    conv.receive_data(b"\r\ngroup-0> ")
    ev = conv.next_event()
    assert isinstance(ev, Ready)


def test_prompt_lookalike_in_output_with_known_group() -> None:
    conv = logged_in()
    conv.send_command(c.VolumeShow("v"))
    # A line that looks like a prompt of another group is output, not the end.
    conv.receive_data(b"volume select v show\r\nfoo> ")
    assert conv.next_event() is None
    conv.receive_data(b"bar\r\ngroup-0> ")
    done = conv.next_event()
    assert isinstance(done, CommandCompleted)
    assert done.lines == ("foo> bar",)


def test_eof_mid_command_is_an_error() -> None:
    conv = logged_in()
    conv.send_command(c.VolumeDelete("v"))
    conv.receive_data(b"volume delete v\r\n")
    with pytest.raises(SanConnectionError) as exc:
        conv.receive_eof()
    assert exc.value.mutating_sent
    assert isinstance(conv.next_event(), Closed)


def test_eof_before_prompt_is_an_error_not_mutating() -> None:
    conv = CliConversation()
    conv.receive_data(b"Welcome")
    with pytest.raises(SanConnectionError) as exc:
        conv.receive_eof()
    assert not exc.value.mutating_sent


def test_eof_when_idle_is_clean() -> None:
    conv = logged_in()
    conv.receive_eof()
    assert isinstance(conv.next_event(), Closed)


def test_send_while_running_is_refused() -> None:
    conv = logged_in()
    conv.send_command(c.VolumeShow("v"))
    with pytest.raises(SanProtocolError):
        conv.send_command(c.VolumeShow("w"))


def test_secret_never_in_completed_lines() -> None:
    conv = logged_in()
    cmd = c.ChapUserCreate("one", Secret(b"s3cretPassw0rd!!"))
    conv.send_command(cmd)
    conv.receive_data(
        b"chapuser create one password s3cretPassw0rd!!\r\n"
        b"% Error - password s3cretPassw0rd!! is weak.\r\ngroup-0> "
    )
    done = conv.next_event()
    assert isinstance(done, CommandCompleted)
    assert "s3cret" not in repr(done)
    assert done.error == "% Error - password *** is weak."


def test_output_limit() -> None:
    conv = logged_in()
    conv.send_command(c.PoolShow("p"))
    with pytest.raises(SanProtocolError):
        for _ in range(20):
            conv.receive_data(b"x" * (1024 * 1024))


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_any_bytes_only_raise_san_errors(data: bytes, step: int) -> None:
    conv = logged_in()
    conv.send_command(c.VolumeShow("v"))
    for i in range(0, len(data), step):
        conv.receive_data(data[i : i + step])
        while conv.next_event() is not None:
            pass


@given(st.lists(st.from_regex(r"[ -~]{0,60}", fullmatch=True), max_size=10))
def test_output_lines_come_back_unchanged(lines: list[str]) -> None:
    # Any printable output that is not itself a prompt survives framing exactly.
    lines = [x for x in lines if not x.startswith("group-0> ")]
    conv = logged_in()
    conv.send_command(c.VolumeShow("v"))
    body = b"".join(x.encode() + b"\r\n" for x in lines)
    events = feed(conv, b"volume select v show\r\n" + body + b"group-0> ", "chunks")
    assert len(events) == 1
    done = events[0]
    assert isinstance(done, CommandCompleted)
    assert list(done.lines) == lines
