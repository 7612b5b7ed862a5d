"""Mutual CHAP settings: the conf keys, the host login script and the node-record helper."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from eqliscsi.errors import ConfigError, UsageError
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.opennebula.config import parse_conf, resolve
from eqliscsi.secret import Secret

REPO = Path(__file__).resolve().parents[3]
HELPER = REPO / "remotes" / "tm" / "eqliscsi" / "eqliscsi-node-auth"
IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-one-7"
INITIATOR_SECRET = "initiator-secret-1"
TARGET_SECRET = "target-secret-0042"


def _files(tmp: Path) -> tuple[Path, Path]:
    ini, tgt = tmp / "chap", tmp / "chap-target"
    ini.write_text(INITIATOR_SECRET)
    tgt.write_text(TARGET_SECRET)
    return ini, tgt


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        pytest.param(["EQL_CHAP_USER=u", "EQL_CHAP_SECRET_FILE={ini}",
                      "EQL_CHAP_TARGET_USER=eqltarget", "EQL_CHAP_TARGET_SECRET_FILE={tgt}"],
                     None, id="mutual"),
        pytest.param(["EQL_CHAP_USER=u", "EQL_CHAP_SECRET_FILE={ini}",
                      "EQL_CHAP_TARGET_USER=eqltarget"], "go together", id="user-without-secret"),
        pytest.param(["EQL_CHAP_USER=u", "EQL_CHAP_SECRET_FILE={ini}",
                      "EQL_CHAP_TARGET_SECRET_FILE={tgt}"], "go together",
                     id="secret-without-user"),
        pytest.param(["EQL_CHAP_TARGET_USER=eqltarget", "EQL_CHAP_TARGET_SECRET_FILE={tgt}"],
                     "needs one-way CHAP", id="no-one-way"),
        pytest.param(["EQL_CHAP_USER=u", "EQL_CHAP_SECRET_FILE={ini}",
                      "EQL_CHAP_TARGET_USER=eqltarget", "EQL_CHAP_TARGET_SECRET_FILE={ini}"],
                     "are the same", id="same-secret"),
        pytest.param(["EQL_CHAP_USER=u", "EQL_CHAP_SECRET_FILE={ini}",
                      "EQL_CHAP_TARGET_USER='bad user'", "EQL_CHAP_TARGET_SECRET_FILE={tgt}"],
                     "EQL_CHAP_TARGET_USER", id="bad-user"),
    ],
)  # fmt: skip
def test_conf_keys(tmp_path: Path, lines: list[str], error: str | None) -> None:
    ini, tgt = _files(tmp_path)
    conf = parse_conf("\n".join(lines).format(ini=ini, tgt=tgt))
    if error is None:
        cfg = resolve(conf).config
        assert cfg.mutual_chap
        assert cfg.chap_target_user == "eqltarget"
        assert cfg.chap_target_secret is not None
        assert cfg.chap_target_secret.reveal() == TARGET_SECRET.encode()
        assert len(cfg.secrets()) == 2  # initiator and target secret, for redaction
        assert TARGET_SECRET not in repr(cfg)
        return
    with pytest.raises(ConfigError, match=error) as info:
        resolve(conf)
    assert TARGET_SECRET not in str(info.value) and INITIATOR_SECRET not in str(info.value)


def test_target_secret_file_is_conf_only(tmp_path: Path) -> None:
    """A datastore template naming a file could make the driver send any file's bytes."""
    ini, tgt = _files(tmp_path)
    other = tmp_path / "other"
    other.write_text("some-other-file-bytes")
    conf = parse_conf(
        f"EQL_CHAP_USER=u\nEQL_CHAP_SECRET_FILE={ini}\n"
        f"EQL_CHAP_TARGET_USER=t\nEQL_CHAP_TARGET_SECRET_FILE={tgt}\n"
    )
    res = resolve(conf, {"EQL_CHAP_TARGET_SECRET_FILE": str(other)})
    assert any("EQL_CHAP_TARGET_SECRET_FILE" in n and "ignored" in n for n in res.notices)
    secret = res.config.chap_target_secret
    assert secret is not None and secret.reveal() == TARGET_SECRET.encode()


def _chap(mutual: bool) -> ia.ChapCredentials:
    if not mutual:
        return ia.ChapCredentials("u", Secret(INITIATOR_SECRET.encode()))
    return ia.ChapCredentials(
        "u", Secret(INITIATOR_SECRET.encode()), "eqltarget", Secret(TARGET_SECRET.encode())
    )


@pytest.mark.parametrize("mutual", [False, True], ids=["one-way", "mutual"])
def test_login_script_feeds_secrets_on_stdin_only(mutual: bool) -> None:
    node = ia.Node(IQN, ia.TargetPortal("10.0.0.5"), "default")
    script = ia.login_script(node, chap=_chap(mutual))
    text = script.stdin_bytes().decode()
    shown = str(script)
    assert INITIATOR_SECRET in text and INITIATOR_SECRET not in shown
    assert (TARGET_SECRET in text) is mutual
    assert TARGET_SECRET not in shown + repr(script)
    # the secrets sit in the quoted here-document, never on a command line
    body = text.split("<<'EQLISCSI_CHAP'\n", 1)[1].split("EQLISCSI_CHAP\n", 1)[0]
    want = ["u", INITIATOR_SECRET] + (["eqltarget", TARGET_SECRET] if mutual else [])
    assert body.splitlines() == want


@pytest.mark.parametrize(
    ("user_in", "secret_in"),
    [("eqltarget", None), ("", Secret(TARGET_SECRET.encode())), ("a b", Secret(b"x" * 12)),
     ("eqltarget", Secret(b"with space 12"))],
    ids=["user-only", "secret-only", "bad-user", "bad-secret"],
)  # fmt: skip
def test_mutual_credentials_validated(user_in: str, secret_in: Secret | None) -> None:
    with pytest.raises(UsageError):
        ia.ChapCredentials("u", Secret(INITIATOR_SECRET.encode()), user_in, secret_in)


RECORD = f"""# BEGIN RECORD 2.1.8
node.name = {IQN}
node.session.auth.authmethod = None
node.session.auth.username_in = old-target
node.session.auth.password_in = old-target-secret
node.conn[0].port = 3260
# END RECORD
"""


def _helper(db: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELPER), IQN, "10.0.0.5:3260", "default"],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "ISCSI_DB": str(db)},
        timeout=10,
        check=False,
    )


@pytest.mark.parametrize(
    ("stdin", "status", "tail"),
    [
        pytest.param(f"u\n{INITIATOR_SECRET}\neqltarget\n{TARGET_SECRET}\n", 0, [
            "node.session.auth.authmethod = CHAP",
            "node.session.auth.username = u",
            f"node.session.auth.password = {INITIATOR_SECRET}",
            "node.session.auth.username_in = eqltarget",
            f"node.session.auth.password_in = {TARGET_SECRET}",
            "# END RECORD",
        ], id="mutual-replaces-old-target"),
        # One-way only: the record's existing target lines (from iscsid.conf defaults
        # at discovery) are the admin's, and are kept.
        pytest.param(f"u\n{INITIATOR_SECRET}\n", 0, [
            "node.session.auth.username_in = old-target",
            "node.session.auth.password_in = old-target-secret",
            "node.conn[0].port = 3260",
            "node.session.auth.authmethod = CHAP",
            "node.session.auth.username = u",
            f"node.session.auth.password = {INITIATOR_SECRET}",
            "# END RECORD",
        ], id="one-way-keeps-target-lines"),
        pytest.param(f"u\n{INITIATOR_SECRET}\neqltarget\n", 7, None, id="target-without-secret"),
        pytest.param(f"u\n{INITIATOR_SECRET}\n\n{TARGET_SECRET}\n", 7, None, id="empty-target"),
    ],
)  # fmt: skip
def test_helper_writes_target_lines(
    tmp_path: Path, stdin: str, status: int, tail: list[str] | None
) -> None:
    rec = tmp_path / "nodes" / IQN / "10.0.0.5,3260,1" / "default"
    rec.parent.mkdir(parents=True)
    rec.write_text(RECORD)
    r = _helper(tmp_path, stdin)
    assert r.returncode == status, r.stderr
    assert TARGET_SECRET not in r.stdout + r.stderr
    if tail is None:
        assert rec.read_text() == RECORD  # a refused input changes nothing
        return
    lines = rec.read_text().splitlines()
    assert lines[-len(tail) :] == tail
    if "mutual" in stdin or "eqltarget" in stdin:
        assert "old-target" not in rec.read_text()
    assert (rec.stat().st_mode & 0o777) == 0o600
