from __future__ import annotations

import pytest

from eqliscsi.opennebula.args import Convention, OneVersion
from eqliscsi.opennebula.output import (
    Dialect,
    ErrorFraming,
    MonitorResult,
    NoOutput,
    SizeResult,
    SourceResult,
    dialect_for,
    one_line,
    render_error,
    render_log,
    render_success,
)
from rig.oned.simulator import oned_failure_reason

V44, V512, V60, V62, V66, V610, V70 = (
    OneVersion(4, 4, 1),
    OneVersion(5, 12),
    OneVersion(6, 0),
    OneVersion(6, 2),
    OneVersion(6, 6),
    OneVersion(6, 10),
    OneVersion(7, 0),
)


@pytest.mark.parametrize(
    ("version", "convention", "framing", "cp_format"),
    [
        pytest.param(V44, None, ErrorFraming.MARKERS, False, id="4.4"),
        pytest.param(V512, None, ErrorFraming.MARKERS, False, id="5.12"),
        pytest.param(V60, None, ErrorFraming.MARKERS, True, id="6.0"),
        pytest.param(V62, None, ErrorFraming.WHOLE_STDERR, True, id="6.2"),
        pytest.param(V610, None, ErrorFraming.WHOLE_STDERR, True, id="6.10"),
        pytest.param(V70, None, ErrorFraming.TAGGED, True, id="7.0"),
        pytest.param(None, Convention.ARGV, ErrorFraming.MARKERS, True, id="unknown-argv"),
        pytest.param(
            None, Convention.DASH_STDIN, ErrorFraming.WHOLE_STDERR, True, id="unknown-dash"
        ),
        pytest.param(None, Convention.STDIN, ErrorFraming.WHOLE_STDERR, True, id="unknown-stdin"),
    ],
)
def test_dialect(
    version: OneVersion | None,
    convention: Convention | None,
    framing: ErrorFraming,
    cp_format: bool,
) -> None:
    d = dialect_for(version, convention)
    assert d.framing is framing
    assert d.cp_prints_format is cp_format


@pytest.mark.parametrize(
    ("action", "result", "version", "stdout"),
    [
        pytest.param("cp", SourceResult("web.3"), V44, "web.3\n", id="cp-4.4"),
        pytest.param("cp", SourceResult("web.3"), V512, "web.3\n", id="cp-5.12"),
        pytest.param("cp", SourceResult("web.3", "raw"), V60, "web.3 raw\n", id="cp-6.0"),
        pytest.param("cp", SourceResult("web.3"), None, "web.3 raw\n", id="cp-unknown"),
        pytest.param("mkfs", SourceResult("web.3"), V70, "web.3\n", id="mkfs-7.0-only-source"),
        pytest.param("clone", SourceResult("web.4"), V66, "web.4\n", id="clone"),
        pytest.param("stat", SizeResult(2252), V44, "2252\n", id="stat"),
        pytest.param(
            "monitor",
            MonitorResult(10, 30, 20),
            V70,
            "USED_MB=10\nTOTAL_MB=30\nFREE_MB=20\n",
            id="monitor",
        ),
        pytest.param("rm", NoOutput(), V70, "", id="rm"),
    ],
)
def test_success(action: str, result: object, version: OneVersion | None, stdout: str) -> None:
    assert render_success(action, result, dialect_for(version)) == stdout  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["a b", "", "x\ny", "a;b"])
def test_success_refuses_unsafe_source(source: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        render_success("cp", SourceResult(source), dialect_for(V70))


MESSAGE = "Volume web.3 could not be created: the pool is full; free space in pool default."


@pytest.mark.parametrize(
    ("version", "framing", "stderr"),
    [
        pytest.param(
            V44,
            "markers",
            f"ERROR MESSAGE --8<------\n{MESSAGE}\nERROR MESSAGE ------>8--\n",
            id="4.4",
        ),
        pytest.param(
            V60,
            "markers",
            f"ERROR MESSAGE --8<------\n{MESSAGE}\nERROR MESSAGE ------>8--\n",
            id="6.0",
        ),
        pytest.param(V62, "whole-stderr", f"{MESSAGE}\n", id="6.2"),
        pytest.param(V610, "whole-stderr", f"{MESSAGE}\n", id="6.10"),
        pytest.param(V70, "tagged", f"{MESSAGE}\n", id="7.0"),
    ],
)
def test_error_framing_round_trip(version: OneVersion, framing: str, stderr: str) -> None:
    rendered = render_error(MESSAGE, dialect_for(version))
    assert rendered == stderr
    # ... and oned's reading of it (the simulator's parser) gives the message back.
    reason, _ = oned_failure_reason(framing, rendered)
    assert reason == MESSAGE


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param("a\nb\r\nc", "a b c", id="newlines"),
        pytest.param("tab\there", "tab here", id="tab"),
        pytest.param("bell\x07x", "bell?x", id="control"),
        pytest.param("ExitCode: 0", "(ExitCode: 0)", id="fake-exit-code"),
        pytest.param("", "", id="empty"),
        pytest.param("x" * 2000, "x" * 999 + "…", id="long"),
    ],
)
def test_one_line(message: str, expected: str) -> None:
    assert one_line(message) == expected


def test_error_never_looks_like_a_log_line() -> None:
    d = dialect_for(V70)
    rendered = render_error("INFO: not a log line", d)
    reason, logs = oned_failure_reason("tagged", rendered)
    assert logs == ()
    assert reason == "eqliscsi INFO: not a log line"


def test_error_never_forges_exit_code_for_44() -> None:
    rendered = render_error("x\nExitCode: 0", Dialect(V44, ErrorFraming.MARKERS, False))
    assert all(not line.startswith("ExitCode:") for line in rendered.splitlines())


def test_render_log() -> None:
    assert render_log("INFO", "ds.cp", "copied\n3 MB") == "INFO: ds.cp: copied 3 MB\n"
