"""/dev/iscsi/<volume> naming: the Python rules and the shipped udev helper agree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqliscsi.opennebula.devname import session_from_devpath, volume_from_iqn

REPO = Path(__file__).resolve().parents[3]
HELPER = REPO / "remotes" / "tm" / "eqliscsi" / "eqliscsi-udev-name"
RULES = REPO / "remotes" / "tm" / "eqliscsi" / "99-eqliscsi.rules"
PREFIX = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-"
DEVPATH = "/devices/platform/host3/session7/target3:0:0/3:0:0:0/block/sdb"

CASES = [
    pytest.param(PREFIX + "one-7", "one-7", id="plain"),
    pytest.param(PREFIX + "ubuntu-14-04-srv.7", "ubuntu-14-04-srv.7", id="dots"),
    pytest.param(PREFIX + "vm-lun-3", "vm-lun-3", id="contains-lun"),
    pytest.param(PREFIX + "iscsi-x-12", "iscsi-x-12", id="contains-iscsi"),
    pytest.param(PREFIX + "a" * 64, "a" * 64, id="64-chars"),
    pytest.param(PREFIX + "a" * 65, None, id="65-chars"),
    pytest.param(PREFIX + "..", None, id="dotdot"),
    pytest.param(PREFIX + "a/b", None, id="slash"),
    pytest.param(PREFIX + "a:b", None, id="colon"),
    pytest.param(PREFIX + "A", None, id="upper-case"),
    pytest.param(PREFIX + "", None, id="empty"),
    pytest.param(PREFIX + "x;reboot", None, id="metachar"),
    pytest.param("iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcde-x", None,
                 id="short-hex"),
    pytest.param("iqn.2003-01.org.linux-iscsi.host:sn.0123456789ab", None, id="lio"),
    pytest.param("iqn.2001-05.com.equallogic:x", None, id="short"),
]  # fmt: skip


def run_helper(
    tmp_path: Path, iqn: str | None, devpath: str = DEVPATH
) -> subprocess.CompletedProcess[str]:
    sysfs = tmp_path / "sys"
    if iqn is not None:
        d = sysfs / "class" / "iscsi_session" / "session7"
        d.mkdir(parents=True, exist_ok=True)
        (d / "targetname").write_text(iqn + "\n")
    return subprocess.run(
        [str(HELPER), devpath],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "EQLISCSI_SYSFS_ROOT": str(sysfs)},
        timeout=10,
        check=False,
    )


@pytest.mark.parametrize(("iqn", "volume"), CASES)
def test_volume_from_iqn(tmp_path: Path, iqn: str, volume: str | None) -> None:
    assert volume_from_iqn(iqn) == volume
    r = run_helper(tmp_path, iqn)
    if volume is None:
        assert r.returncode == 1 and r.stdout == ""
    else:
        assert r.returncode == 0, r.stderr
        assert r.stdout == volume + "\n"


@pytest.mark.parametrize(
    ("devpath", "session"),
    [
        pytest.param(DEVPATH, 7, id="disk"),
        pytest.param(DEVPATH + "/sdb1", 7, id="partition"),
        pytest.param("/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
                     None, id="sata"),
        pytest.param("/devices/x/session1/y/session2/block/sdc", None, id="two-sessions"),
        pytest.param("/devices/x/sessionX/block/sdc", None, id="not-a-number"),
    ],
)  # fmt: skip
def test_session_from_devpath(tmp_path: Path, devpath: str, session: int | None) -> None:
    assert session_from_devpath(devpath) == session
    r = run_helper(tmp_path, PREFIX + "one-7", devpath)
    assert (r.returncode == 0) == (session == 7)


def test_helper_without_session_record(tmp_path: Path) -> None:
    assert run_helper(tmp_path, None).returncode == 1


def test_helper_rejects_multi_line_targetname(tmp_path: Path) -> None:
    r = run_helper(tmp_path, PREFIX + "one-7\n" + PREFIX + "evil")
    assert r.stdout in ("", "one-7\n")  # only the first line is ever read


@settings(max_examples=50)
@given(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,63}", fullmatch=True))
def test_any_eql_volume_name_round_trips(volume: str) -> None:
    expected = None if volume in (".", "..") else volume
    assert volume_from_iqn(PREFIX + volume) == expected


@settings(max_examples=20, deadline=None)
@given(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,63}", fullmatch=True))
def test_helper_agrees_with_python(tmp_path_factory: pytest.TempPathFactory, volume: str) -> None:
    r = run_helper(tmp_path_factory.mktemp("h"), PREFIX + volume)
    assert (r.stdout.strip() or None) == volume_from_iqn(PREFIX + volume)


def test_rules_call_the_helper_for_disks_and_partitions() -> None:
    text = RULES.read_text()
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert 'ENV{DEVTYPE}=="disk", PROGRAM="eqliscsi-udev-name %p", SYMLINK+="iscsi/%c"' in rules
    assert (
        'ENV{DEVTYPE}=="partition", PROGRAM="eqliscsi-udev-name %p", SYMLINK+="iscsi/%cp%n"'
        in rules
    )
    assert rules[0].startswith('ACTION=="remove"')
    assert rules[-1] == 'LABEL="eqliscsi_end"'


def test_trailing_newline_is_not_a_volume() -> None:
    assert volume_from_iqn(PREFIX + "one-7\n") is None
