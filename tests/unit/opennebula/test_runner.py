"""run_action in-process: argv/stdin in, stdout/stderr/exit status out."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from eqliscsi.errors import EqliscsiError, ExitCode
from eqliscsi.opennebula import runner
from eqliscsi.opennebula.output import SizeResult
from eqliscsi.opennebula.runner import ActionContext, run_action
from tests.unit.opennebula import documents as docs


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def remotes(tmp_path: Path) -> Path:
    tree = tmp_path / "remotes"
    (tree / "datastore" / "eqliscsi").mkdir(parents=True)
    (tree / "tm" / "eqliscsi").mkdir(parents=True)
    return tree


def run(
    remotes: Path,
    name: str,
    argv: list[str],
    stdin: bytes = b"",
    version: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    if version is not None:
        (remotes / "VERSION").write_text(version)
    out, err = io.StringIO(), io.StringIO()
    kind = "datastore" if name.startswith("ds.") else "tm"
    env = {"HOME": "/nonexistent", "EQLISCSI_LOG_FILE": str(remotes.parent / "eqliscsi.log")}
    env |= extra_env or {}
    rc = run_action(
        name,
        argv,
        argv0=str(remotes / kind / "eqliscsi" / name.split(".")[1]),
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
        environ=env,
    )
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def fake_actions(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Register test-only actions; they record what the runner handed them."""
    seen: dict[str, object] = {}

    def size_action(ctx: ActionContext) -> SizeResult:
        seen["ctx"] = ctx
        ctx.info("measured\nthe image")
        ctx.debug("details")
        return SizeResult(11)

    def boom(ctx: ActionContext) -> SizeResult:
        ctx.info("about to fail")
        raise KeyError("secret-internal-detail")

    def config_action(ctx: ActionContext) -> SizeResult:
        cfg = ctx.config().config
        raise EqliscsiError(f"SAN said no to {cfg.password.reveal_str()}")  # type: ignore[union-attr]

    module = type(runner)("fake_actions_mod")
    module.size_action = size_action  # type: ignore[attr-defined]
    module.boom = boom  # type: ignore[attr-defined]
    module.config_action = config_action  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "fake_actions_mod", module)
    monkeypatch.setitem(runner.ACTIONS, "ds.fake", ("fake_actions_mod", "size_action"))
    monkeypatch.setitem(runner.ACTIONS, "ds.boom", ("fake_actions_mod", "boom"))
    monkeypatch.setitem(runner.ACTIONS, "ds.conf", ("fake_actions_mod", "config_action"))
    monkeypatch.setitem(runner.ACTIONS, "tm.clone", ("fake_actions_mod", "size_action"))
    return seen


@pytest.mark.parametrize(
    ("version", "argv", "stdin"),
    [
        pytest.param("4.4.1", [b64(docs.DS_STAT_44), "0"], b"", id="4.4"),
        pytest.param("6.6.2", ["-", "0"], b64(docs.DS_STAT_44).encode(), id="6.6-dash"),
        pytest.param("6.10.0\n", ["0"], b64(docs.DS_STAT_44).encode(), id="6.10"),
        pytest.param(None, ["0"], b64(docs.DS_STAT_44).encode(), id="no-version-file"),
    ],
)
def test_success_paths(
    remotes: Path,
    fake_actions: dict[str, object],
    version: str | None,
    argv: list[str],
    stdin: bytes,
) -> None:
    rc, out, err = run(remotes, "ds.fake", argv, stdin, version)
    assert (rc, out) == (0, "11\n")
    assert err == "INFO: ds.fake: measured the image\nDEBUG: ds.fake: details\n"
    ctx = fake_actions["ctx"]
    assert isinstance(ctx, ActionContext)
    assert ctx.driver_action is not None and ctx.image().path == "/tmp/ttylinux.img"
    assert ctx.remotes_dir == str(remotes)
    log = (remotes.parent / "eqliscsi.log").read_text()
    assert "INFO: ds.fake: measured the image" in log


@pytest.mark.parametrize(
    ("version", "expected_stderr"),
    [
        pytest.param(
            "5.12.0",
            "INFO: ds.boom: about to fail\nERROR MESSAGE --8<------\n"
            "eqliscsi ds.boom failed with an internal error (KeyError); details in {log}, "
            "please report it.\nERROR MESSAGE ------>8--\n",
            id="5.12-markers-with-logs",
        ),
        pytest.param(
            "6.6.0",
            "eqliscsi ds.boom failed with an internal error (KeyError); details in {log}, "
            "please report it.\n",
            id="6.6-message-only",
        ),
        pytest.param(
            "7.0.0",
            "INFO: ds.boom: about to fail\n"
            "eqliscsi ds.boom failed with an internal error (KeyError); details in {log}, "
            "please report it.\n",
            id="7.0-logs-and-message",
        ),
    ],
)
def test_internal_error_no_traceback(
    remotes: Path, fake_actions: dict[str, object], version: str, expected_stderr: str
) -> None:
    argv = [b64(docs.DS_STAT_44), "0"] if not version.startswith("7") else ["0"]
    stdin = b"" if not version.startswith("7") else b64(docs.DS_STAT_44).encode()
    rc, out, err = run(remotes, "ds.boom", argv, stdin, version)
    log = remotes.parent / "eqliscsi.log"
    assert rc == ExitCode.INTERNAL
    assert out == ""
    assert err == expected_stderr.format(log=log)
    assert "Traceback" not in err and "secret-internal-detail" not in err
    text = log.read_text()
    assert "Traceback" in text and "secret-internal-detail" in text


@pytest.mark.parametrize(
    ("name", "argv", "stdin", "code", "needle"),
    [
        pytest.param(
            "ds.fake", ["%%%", "1"], b"", ExitCode.USAGE, "not valid base64", id="bad-base64"
        ),
        pytest.param(
            "ds.fake",
            [b64(docs.BILLION_LAUGHS), "1"],
            b"",
            ExitCode.USAGE,
            "DTD or entities",
            id="xml-bomb",
        ),
        pytest.param(
            "ds.fake", [b64(b"<x"), "1"], b"", ExitCode.USAGE, "not well-formed", id="broken-xml"
        ),
        pytest.param("ds.fake", [], b"", ExitCode.USAGE, "expects 1 or 2", id="no-args"),
        pytest.param("ds.nope", ["1"], b"", ExitCode.USAGE, "not implemented", id="unknown-action"),
        pytest.param(
            "tm.clone", ["fe:a", "n:/x/disk.0", "1"], b"", ExitCode.USAGE, "expects 4", id="tm-argc"
        ),
    ],
)
def test_expected_errors(
    remotes: Path,
    fake_actions: dict[str, object],
    name: str,
    argv: list[str],
    stdin: bytes,
    code: ExitCode,
    needle: str,
) -> None:
    rc, out, err = run(remotes, name, argv, stdin, "6.6.0")
    assert rc == code and out == ""
    assert needle in err
    assert len(err.splitlines()) == 1  # 6.2-6.10: the whole stderr is the message


def test_version_mismatch_is_reported(remotes: Path, fake_actions: dict[str, object]) -> None:
    rc, _, err = run(remotes, "ds.fake", [b64(docs.DS_STAT_44), "0"], b"", "7.0.0")
    assert rc == ExitCode.USAGE
    assert "never does" in err and "7.0.0" in err


def test_stdin_terminal_is_refused(
    remotes: Path, fake_actions: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.BytesIO):
        def isatty(self) -> bool:
            return True

    (remotes / "VERSION").write_text("7.0.0")
    err = io.StringIO()
    rc = run_action(
        "ds.fake",
        ["0"],
        argv0=str(remotes / "datastore/eqliscsi/fake"),
        stdin=Tty(b""),
        stdout=io.StringIO(),
        stderr=err,
        environ={"EQLISCSI_LOG_FILE": str(remotes.parent / "l")},
    )
    assert rc == ExitCode.USAGE and "terminal" in err.getvalue()


def test_secret_redacted_from_error(remotes: Path, fake_actions: dict[str, object]) -> None:
    conf = remotes / "datastore" / "eqliscsi" / "eqliscsi.conf"
    conf.write_text("EQL_HOST=10.0.0.1\nEQL_USER=u\nEQL_PASS='hunter2-pw'\n")
    rc, _, err = run(remotes, "ds.conf", [b64(docs.DS_MONITOR), "100"], b"", "6.6.0")
    assert rc == ExitCode.ERROR
    assert "hunter2-pw" not in err and "SAN said no to ***" in err
    assert "hunter2-pw" not in (remotes.parent / "eqliscsi.log").read_text()


def test_conf_from_environment(
    remotes: Path, fake_actions: dict[str, object], tmp_path: Path
) -> None:
    conf = tmp_path / "elsewhere.conf"
    conf.write_text("EQL_PASS=from-env-conf\n")
    rc, _, err = run(
        remotes,
        "ds.conf",
        [b64(docs.DS_MONITOR), "100"],
        b"",
        "6.6.0",
        {"EQLISCSI_CONF": str(conf)},
    )
    assert rc == ExitCode.ERROR and "SAN said no to ***" in err
