from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.errors import (
    ConfigError,
    EqliscsiError,
    ExitCode,
    IscsiError,
    SanError,
    UsageError,
    exit_code_for,
)
from eqliscsi.secret import REDACTED, Secret, redact


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        pytest.param(UsageError("x"), ExitCode.USAGE, id="usage"),
        pytest.param(ConfigError("x"), ExitCode.CONFIG, id="config"),
        pytest.param(IscsiError("x"), ExitCode.ISCSI, id="iscsi"),
        pytest.param(SanError("x"), ExitCode.SAN, id="san"),
        pytest.param(EqliscsiError("x"), ExitCode.ERROR, id="root"),
        pytest.param(TimeoutError(), ExitCode.TIMEOUT, id="builtin-timeout"),
        pytest.param(ValueError(), ExitCode.INTERNAL, id="bug"),
    ],
)
def test_exit_code_for(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) == code


def test_message_and_hint_form_sentences() -> None:
    e = ConfigError("EQL_HOST is empty.", hint="Set it to the group IP.")
    assert str(e) == "EQL_HOST is empty. Set it to the group IP."


def test_reference_must_be_kebab_case() -> None:
    with pytest.raises(TypeError):

        class Bad(EqliscsiError):
            reference = "Not_Kebab"


def test_secret_never_prints(tmp_path: Path) -> None:
    f = tmp_path / "s"
    f.write_text("hunter2hunter2\n")
    s = Secret.from_file(f)
    assert s.reveal() == b"hunter2hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert redact("pw=hunter2hunter2 ok", [s]) == f"pw={REDACTED} ok"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [pytest.param(b"", "empty", id="empty"), pytest.param(b"x" * 5000, "longer", id="huge")],
)
def test_bad_secret_files_are_config_errors(tmp_path: Path, content: bytes, fragment: str) -> None:
    f = tmp_path / "s"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=fragment):
        Secret.from_file(f)


def test_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Secret.from_file(tmp_path / "nope")
