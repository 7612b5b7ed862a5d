from __future__ import annotations

import base64
import binascii
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqliscsi.opennebula.args import (
    MAX_DOCUMENT_BYTES,
    Convention,
    HostPath,
    MigrateCall,
    OneVersion,
    TmCall,
    decode_base64,
    parse_ds_call,
    parse_tm_call,
    read_version,
)
from eqliscsi.opennebula.errors import BadCallError, BadValueError

DOC = b"<DS_DRIVER_ACTION_DATA/>"
B64 = base64.b64encode(DOC).decode()
VM_B64 = base64.b64encode(b"<VM><ID>1</ID></VM>").decode()


def stdin_of(data: bytes):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def read(limit: int) -> bytes:
        calls.append(limit)
        return data[:limit]

    read.calls = calls  # type: ignore[attr-defined]
    return read


def no_stdin(limit: int) -> bytes:
    raise AssertionError("stdin must not be read for this convention")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("4.4.1", OneVersion(4, 4, 1), id="4.4"),
        pytest.param("5.12.0", OneVersion(5, 12, 0), id="5.12"),
        pytest.param("6.8.0", OneVersion(6, 8, 0), id="6.8-no-newline"),
        pytest.param("6.10.0\n", OneVersion(6, 10, 0), id="6.10-newline"),
        pytest.param("7.0", OneVersion(7, 0, 0), id="two-part"),
        pytest.param("6.99.85-beta", OneVersion(6, 99, 85), id="suffix"),
    ],
)
def test_version_parse(text: str, expected: OneVersion) -> None:
    assert OneVersion.parse(text) == expected


@pytest.mark.parametrize("text", ["", "six", "6", "6.x.1", "6.10.0; rm -rf /"])
def test_version_parse_rejects(text: str) -> None:
    with pytest.raises(BadCallError):
        OneVersion.parse(text)


def test_version_ordering() -> None:
    assert OneVersion(6, 10) > OneVersion(6, 8) > OneVersion(6, 6, 2) > OneVersion(5, 12)


def test_read_version(tmp_path: Path) -> None:
    assert read_version(tmp_path) is None
    (tmp_path / "VERSION").write_text("6.10.0\n")
    assert read_version(tmp_path) == OneVersion(6, 10, 0)


@pytest.mark.parametrize(
    ("argv", "stdin", "version", "convention"),
    [
        pytest.param([B64, "7"], b"", None, Convention.ARGV, id="argv-unknown"),
        pytest.param([B64, "7"], b"", OneVersion(4, 4, 1), Convention.ARGV, id="argv-4.4"),
        pytest.param([B64, "7"], b"", OneVersion(5, 12), Convention.ARGV, id="argv-5.12"),
        pytest.param([B64, "7"], b"", OneVersion(6, 6), Convention.ARGV, id="argv-6.6"),
        pytest.param(["-", "7"], B64.encode(), None, Convention.DASH_STDIN, id="dash-unknown"),
        pytest.param(
            ["-", "7"], B64.encode(), OneVersion(6, 6, 2), Convention.DASH_STDIN, id="dash-6.6"
        ),
        pytest.param(
            ["-", "7"],
            B64.encode() + b"\n",
            OneVersion(6, 4, 4),
            Convention.DASH_STDIN,
            id="dash-6.4-newline",
        ),
        pytest.param(["7"], B64.encode(), None, Convention.STDIN, id="stdin-unknown"),
        pytest.param(["7"], B64.encode(), OneVersion(6, 8), Convention.STDIN, id="stdin-6.8"),
        pytest.param(["7"], B64.encode(), OneVersion(7, 0), Convention.STDIN, id="stdin-7.0"),
    ],
)
def test_ds_conventions(
    argv: list[str], stdin: bytes, version: OneVersion | None, convention: Convention
) -> None:
    reader = stdin_of(stdin) if convention is not Convention.ARGV else no_stdin
    call = parse_ds_call("cp", argv, reader, version)
    assert call.convention is convention
    assert call.object_id == 7
    assert call.document == DOC
    assert call.version == version


def test_ds_stdin_read_is_bounded() -> None:
    reader = stdin_of(B64.encode())
    parse_ds_call("cp", ["1"], reader, None)
    assert reader.calls == [MAX_DOCUMENT_BYTES + 1]


def test_ds_wrapped_base64_accepted() -> None:
    wrapped = base64.encodebytes(DOC * 10)  # 76-column lines
    assert b"\n" in wrapped.strip()
    call = parse_ds_call("cp", ["3"], stdin_of(wrapped), None)
    assert call.document == DOC * 10


@pytest.mark.parametrize(
    ("argv", "stdin", "version", "match"),
    [
        pytest.param([], b"", None, "expects 1 or 2", id="no-args"),
        pytest.param([B64, "1", "x"], b"", None, "expects 1 or 2", id="three-args"),
        pytest.param([B64, "1"], b"", OneVersion(6, 8), "never does", id="argv-on-6.8"),
        pytest.param(["-", "1"], B64.encode(), OneVersion(5, 12), "never does", id="dash-on-5.12"),
        pytest.param(["1"], B64.encode(), OneVersion(6, 6), "never does", id="stdin-on-6.6"),
        pytest.param([B64, "-1"], b"", None, "non-negative", id="negative-id"),
        pytest.param([B64, "1; rm -rf /"], b"", None, "non-negative", id="id-injection"),
        pytest.param([B64, "007"], b"", None, "non-negative", id="id-leading-zero"),
        pytest.param(["%%%notbase64", "1"], b"", None, "base64", id="bad-base64"),
        pytest.param(["QUJDRA", "1"], b"", None, "base64", id="bad-padding"),
        pytest.param(["1"], b"", None, "empty", id="empty-stdin"),
        pytest.param(["1"], b"A" * (MAX_DOCUMENT_BYTES + 4), None, "larger", id="huge-stdin"),
    ],
)
def test_ds_rejects(argv: list[str], stdin: bytes, version: OneVersion | None, match: str) -> None:
    with pytest.raises(BadCallError, match=match) as info:
        parse_ds_call("cp", argv, stdin_of(stdin), version)
    assert "\n" not in str(info.value)


# --- TM -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "argv", "expected"),
    [
        pytest.param(
            "clone",
            ["fe:ubuntu.7", "node1:/var/lib/one//datastores/0/42/disk.0", "42", "100"],
            TmCall(
                "clone",
                src=HostPath("fe", "ubuntu.7"),
                dst=HostPath("node1", "/var/lib/one/datastores/0/42/disk.0"),
                vm_id=42,
                ds_id=100,
            ),
            id="clone",
        ),
        pytest.param(
            "ln",
            ["fe.example.org:data.9", "node-2:/var/lib/one/datastores/0/42/disk.1", "42", "100"],
            TmCall(
                "ln",
                src=HostPath("fe.example.org", "data.9"),
                dst=HostPath("node-2", "/var/lib/one/datastores/0/42/disk.1"),
                vm_id=42,
                ds_id=100,
            ),
            id="ln",
        ),
        pytest.param(
            "mv",
            ["node1:/d/42/disk.1", "fe:/d/42/disk.1", "42", "100"],
            TmCall(
                "mv",
                src=HostPath("node1", "/d/42/disk.1"),
                dst=HostPath("fe", "/d/42/disk.1"),
                vm_id=42,
                ds_id=100,
            ),
            id="mv",
        ),
        pytest.param(
            "mvds",
            ["node1:/d/42/disk.1", "data.9", "42", "100"],
            TmCall(
                "mvds", dst=HostPath("node1", "/d/42/disk.1"), source="data.9", vm_id=42, ds_id=100
            ),
            id="mvds",
        ),
        pytest.param(
            "cpds",
            ["node1:/d/42/disk.1", "saved.12", "42", "100"],
            TmCall(
                "cpds",
                dst=HostPath("node1", "/d/42/disk.1"),
                source="saved.12",
                vm_id=42,
                ds_id=100,
            ),
            id="cpds-4.4",
        ),
        pytest.param(
            "cpds",
            ["node1:/d/42/disk.1", "saved.12", "-1", "42", "100"],
            TmCall(
                "cpds",
                dst=HostPath("node1", "/d/42/disk.1"),
                source="saved.12",
                snap_id=-1,
                vm_id=42,
                ds_id=100,
            ),
            id="cpds-current",
        ),
        pytest.param(
            "delete",
            ["node1:/d/42/disk.0", "42", "100"],
            TmCall("delete", dst=HostPath("node1", "/d/42/disk.0"), vm_id=42, ds_id=100),
            id="delete-disk",
        ),
        pytest.param(
            "delete",
            ["node1:/d/42", "42", "0"],
            TmCall("delete", dst=HostPath("node1", "/d/42"), vm_id=42, ds_id=0),
            id="delete-dir",
        ),
        pytest.param(
            "snap_create",
            ["node1:/d/42/disk.0", "3", "42", "100"],
            TmCall(
                "snap_create", dst=HostPath("node1", "/d/42/disk.0"), snap_id=3, vm_id=42, ds_id=100
            ),
            id="snap-create",
        ),
        pytest.param(
            "resize",
            ["node1:/d/42/disk.0", "20480", "42", "100"],
            TmCall(
                "resize", dst=HostPath("node1", "/d/42/disk.0"), size_mb=20480, vm_id=42, ds_id=100
            ),
            id="resize",
        ),
    ],
)
def test_tm_calls(action: str, argv: list[str], expected: TmCall) -> None:
    assert parse_tm_call(action, argv, no_stdin, None) == expected


def test_disk_id() -> None:
    assert HostPath.parse("n:/d/42/disk.12", "x").disk_id == 12
    assert HostPath.parse("n:/d/42", "x").disk_id is None
    assert HostPath.parse("n:/d/42/disk.1.iso", "x").disk_id is None


@pytest.mark.parametrize(
    ("action", "argv", "error"),
    [
        pytest.param("clone", ["fe:a", "n:/d/disk.0", "1"], BadCallError, id="too-few"),
        pytest.param("clone", ["fe", "n:/d/disk.0", "1", "2"], BadCallError, id="no-colon"),
        pytest.param(
            "clone", ["fe:a", "n:relative/disk.0", "1", "2"], BadValueError, id="relative"
        ),
        pytest.param("clone", ["fe:a", "n:/d/../etc/disk.0", "1", "2"], BadValueError, id="dotdot"),
        pytest.param(
            "clone", ["fe:a", "n:/d/$(reboot)/disk.0", "1", "2"], BadValueError, id="subst-path"
        ),
        pytest.param(
            "clone", ["fe:a", "n;reboot:/d/disk.0", "1", "2"], BadValueError, id="semicolon-host"
        ),
        pytest.param(
            "clone",
            ["fe:a", "-oProxyCommand=x:/d/disk.0", "1", "2"],
            BadValueError,
            id="ssh-option-host",
        ),
        pytest.param("clone", ["fe:a", "n:/d/disk.0", "x", "2"], BadCallError, id="vmid-not-int"),
        pytest.param(
            "mvds", ["n:/d/disk.0", "vol'quote", "1", "2"], BadValueError, id="source-quote"
        ),
        pytest.param("resize", ["n:/d/disk.0", "-5", "1", "2"], BadCallError, id="negative-size"),
        pytest.param("context", ["a", "n:/d/disk.0", "1", "2"], BadCallError, id="system-only"),
    ],
)
def test_tm_rejects(action: str, argv: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_tm_call(action, argv, no_stdin, None)


BASE = ["node1", "node2", "/var/lib/one//datastores/0/42", "42", "0"]


@pytest.mark.parametrize(
    ("argv", "stdin", "version", "sys_tm", "read_stdin"),
    [
        pytest.param([*BASE, VM_B64], b"", OneVersion(4, 4), None, False, id="4.4-argv6"),
        pytest.param([*BASE, VM_B64], b"", None, None, False, id="unknown-argv6"),
        pytest.param(
            [*BASE, VM_B64, "shared"], b"", OneVersion(5, 10), "shared", False, id="5.10-argv6-sys"
        ),
        pytest.param(
            [*BASE, VM_B64, "shared"], b"", OneVersion(5, 0), "shared", False, id="5.0-argv6-sys"
        ),
        pytest.param(
            [*BASE, VM_B64, "ssh"], b"", OneVersion(5, 8), "ssh", False, id="5.8-argv6-sys"
        ),
        pytest.param([*BASE, VM_B64, "shared"], b"", None, "shared", False, id="unknown-argv6-sys"),
        pytest.param(
            [*BASE, "shared"],
            VM_B64.encode() + b"\n",
            OneVersion(5, 12),
            "shared",
            True,
            id="5.12-stdin-sys",
        ),
        pytest.param(
            [*BASE, "ssh"], VM_B64.encode() + b"\n", None, "ssh", True, id="unknown-stdin-ssh"
        ),
        pytest.param(
            [*BASE, "ceph"], VM_B64.encode() + b"\n", None, "ceph", True, id="unknown-stdin-ceph"
        ),
        pytest.param(
            BASE, VM_B64.encode() + b"\n", OneVersion(7, 0), None, True, id="7.0-stdin-master"
        ),
    ],
)
def test_migrate(
    argv: list[str], stdin: bytes, version: OneVersion | None, sys_tm: str | None, read_stdin: bool
) -> None:
    call = parse_tm_call("premigrate", argv, stdin_of(stdin) if read_stdin else no_stdin, version)
    assert isinstance(call, MigrateCall)
    assert call.vm_document == b"<VM><ID>1</ID></VM>"
    assert call.sys_tm == sys_tm
    assert (call.src_host, call.dst_host, call.vm_dir) == (
        "node1",
        "node2",
        "/var/lib/one/datastores/0/42",
    )
    assert (call.vm_id, call.ds_id) == (42, 0)


@pytest.mark.parametrize(
    ("argv", "version"),
    [
        pytest.param(BASE[:4], None, id="too-few"),
        pytest.param([*BASE, VM_B64, "shared", "x"], None, id="too-many"),
        pytest.param(BASE, OneVersion(5, 10), id="5.10-without-template"),
        # 5.8 never puts the template on stdin: a 5.12-shaped call contradicts VERSION.
        pytest.param([*BASE, "shared"], OneVersion(5, 8), id="5.8-stdin-shape"),
        pytest.param([*BASE, "Sh;ared"], OneVersion(6, 0), id="bad-sys-tm"),
    ],
)
def test_migrate_rejects(argv: list[str], version: OneVersion | None) -> None:
    with pytest.raises((BadCallError, BadValueError)):
        parse_tm_call("postmigrate", argv, stdin_of(VM_B64.encode()), version)


def _reference_b64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=16),
        st.text(alphabet="AQgw=+/a-_ ", max_size=16).map(str.encode),
        st.binary(max_size=12).map(base64.b64encode),
    )
)
def test_decode_base64_accepts_what_b64decode_validate_accepts(data: bytes) -> None:
    # decode_base64 strips whitespace (oned wraps lines) and then must agree with
    # base64.b64decode(validate=True), which it replaces to keep base64 off start-up.
    compact = b"".join(data.split())
    expected = _reference_b64(compact) if compact else None
    try:
        got: bytes | None = decode_base64(data, "document")
    except BadCallError:
        got = None
    assert got == expected
