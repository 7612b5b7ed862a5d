"""The shipped CHAP helper: stdin in, node record out, nothing in argv."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HELPER = REPO / "remotes" / "tm" / "eqliscsi" / "eqliscsi-node-auth"
IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123abcde-0123456789abcdef-one-7"
RECORD = f"""# BEGIN RECORD 2.1.8
node.name = {IQN}
node.tpgt = 1
node.startup = manual
node.session.auth.authmethod = None
node.session.auth.username = old
node.session.auth.password = old-secret
node.conn[0].address = 10.0.0.5
node.conn[0].port = 3260
# END RECORD
"""


def helper(db: Path, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELPER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "ISCSI_DB": str(db)},
        timeout=10,
        check=False,
    )


def make_record(db: Path, portal_dir: str = "10.0.0.5,3260,1", iface: str = "default") -> Path:
    rec = db / "nodes" / IQN / portal_dir / iface
    rec.parent.mkdir(parents=True)
    rec.write_text(RECORD)
    return rec


def test_rewrites_auth_lines(tmp_path: Path) -> None:
    rec = make_record(tmp_path)
    r = helper(tmp_path, [IQN, "10.0.0.5:3260", "default"], "oneadmin\nN3w-S3cret\n")
    assert r.returncode == 0, r.stderr
    lines = rec.read_text().splitlines()
    assert lines[-4:] == [
        "node.session.auth.authmethod = CHAP",
        "node.session.auth.username = oneadmin",
        "node.session.auth.password = N3w-S3cret",
        "# END RECORD",
    ]
    assert "old-secret" not in rec.read_text()
    assert "node.conn[0].port = 3260" in lines
    assert (rec.stat().st_mode & 0o777) == 0o600
    assert "N3w-S3cret" not in r.stdout + r.stderr
    assert list(rec.parent.iterdir()) == [rec]  # no temporary left behind


def test_ipv6_portal(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "fd00::5,3260,1")
    r = helper(tmp_path, [IQN, "[fd00::5]:3260", "default"], "u\nsecret-123\n")
    assert r.returncode == 0, r.stderr
    assert "node.session.auth.password = secret-123" in rec.read_text()


@pytest.mark.parametrize(
    ("args", "stdin", "status"),
    [
        pytest.param([IQN, "10.0.0.6:3260", "default"], "u\ns\n", 21, id="no-record"),
        pytest.param([IQN, "10.0.0.5:3260", "eql1"], "u\ns\n", 21, id="other-iface"),
        pytest.param([IQN, "10.0.0.5:3260"], "u\ns\n", 7, id="missing-arg"),
        pytest.param([IQN, "10.0.0.5", "default"], "u\ns\n", 7, id="no-port"),
        pytest.param([IQN + "/../x", "10.0.0.5:3260", "default"], "u\ns\n", 7, id="slash"),
        pytest.param([IQN, "10.0.0.5:3260", ".."], "u\ns\n", 7, id="dotdot-iface"),
        pytest.param(["..", "10.0.0.5:3260", "default"], "u\ns\n", 7, id="dotdot-iqn"),
        pytest.param([IQN, "10.0.0.5:3260", "default"], "u\n", 7, id="no-secret"),
        pytest.param([IQN, "10.0.0.5:3260", "default"], "\ns\n", 7, id="empty-user"),
    ],
)
def test_refusals(tmp_path: Path, args: list[str], stdin: str, status: int) -> None:
    rec = make_record(tmp_path)
    r = helper(tmp_path, args, stdin)
    assert r.returncode == status, r.stderr
    assert rec.read_text() == RECORD


def test_iqn_with_double_dot_is_a_name_not_a_path(tmp_path: Path) -> None:
    iqn = IQN + "..x"
    rec = tmp_path / "nodes" / iqn / "10.0.0.5,3260,1" / "default"
    rec.parent.mkdir(parents=True)
    rec.write_text(RECORD)
    r = helper(tmp_path, [iqn, "10.0.0.5:3260", "default"], "u\nsecret-123\n")
    assert r.returncode == 0, r.stderr
    assert "node.session.auth.password = secret-123" in rec.read_text()
