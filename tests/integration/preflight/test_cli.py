"""``eqliscsi preflight`` as a process against the fake group: exit codes, --json, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.fake_eql.conftest import PASSWORD
from tests.integration.preflight.conftest import CHAP_SECRET, DS_ID, Group

pytestmark = [pytest.mark.tgt]

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "docs" / "preflight.schema.json").read_text())
ONED_NO_DISK_TYPE = """\
TM_MAD = [ EXECUTABLE = "one_tm", ARGUMENTS = "-t 15 -d dummy,shared,eqliscsi" ]
DATASTORE_MAD = [ EXECUTABLE = "one_datastore", ARGUMENTS = "-t 15 -d dummy,fs,eqliscsi" ]
TM_MAD_CONF = [ NAME = "eqliscsi", LN_TARGET = "NONE", CLONE_TARGET = "SELF", SHARED = "YES" ]
"""


def preflight(tmp: Path, conf: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    ds = tmp / "ds.tpl"
    ds.write_text('DS_MAD = "eqliscsi"\nTM_MAD = "eqliscsi"\nDISK_TYPE = "BLOCK"\n')
    argv = [sys.executable, "-m", "eqliscsi", "preflight", "--json", "--conf", str(conf),
            "--datastore-template", str(ds), "--datastore", str(DS_ID), "--remotes",
            str(tmp / "none"), "--oned-conf", str(tmp / "none.conf"), *args]  # fmt: skip
    env = {**os.environ, "PATH": os.environ.get("PATH", "")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert PASSWORD not in done.stdout + done.stderr
    assert CHAP_SECRET not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["exit_code"] == done.returncode
    return done.returncode, report, done.stderr


ONLY_SAN = ("--skip", "front-end", "--skip", "hosts")


@pytest.mark.parametrize(
    ("args", "conf_extra", "code", "statuses"),
    [
        pytest.param(ONLY_SAN, "", 0, {"san.pool": "pass", "iscsi.probe": "pass"}, id="clean-0"),
        pytest.param((*ONLY_SAN, "--skip", "iscsi.probe,iscsi.redirect"), "short", 1,
                     {"iscsi.chap-secret": "warn", "san.pool": "pass"}, id="warning-only-1"),
        pytest.param(ONLY_SAN, "EQL_POOL=nopool\n", 2, {"san.pool": "fail"}, id="failure-2"),
        pytest.param((*ONLY_SAN, "--skip", "san.pool"), "EQL_POOL=nopool\n", 0, {},
                     id="failure-skipped-0"),
    ],
)  # fmt: skip
def test_exit_codes(
    group: Group, tmp_path: Path, args: tuple[str, ...], conf_extra: str, code: int,
    statuses: dict[str, str],
) -> None:  # fmt: skip
    if conf_extra == "short":  # a 5-byte CHAP secret: a warning, RFC 7143 wants 12+
        conf = group.conf(tmp_path, chap="short")
    else:
        conf = group.conf(tmp_path, extra=conf_extra)
    rc, report, _ = preflight(tmp_path, conf, *args)
    assert rc == code, [r["found"] for r in report["results"] if r["id"] == "san.pool"]
    got = {r["id"]: r["status"] for r in report["results"]}
    for cid, status in statuses.items():
        assert got[cid] == status
    assert not any(i.startswith(("fe.", "host.")) for i in got)
    for skipped in ("san.pool", "iscsi.probe"):
        if any(skipped in a for a in args[4:]):
            assert skipped not in got


def test_front_end_faults_world_readable_conf_and_no_disk_type(
    group: Group, tmp_path: Path
) -> None:
    oned = tmp_path / "oned.conf"
    oned.write_text(ONED_NO_DISK_TYPE)
    conf = group.conf(tmp_path, extra=f"EQL_PASS={PASSWORD}\n")
    conf.chmod(0o644)
    rc, report, _ = preflight(tmp_path, conf, "--oned-conf", str(oned), "--skip", "hosts")
    assert rc == 2
    by_id = {r["id"]: r for r in report["results"]}
    perm = by_id["fe.conf-permissions"]
    assert perm["status"] == "fail" and "readable by every user" in perm["found"]
    assert perm["fix"] == f"Run 'chmod 600 {conf}' and 'chown oneadmin {conf}'."
    tm = by_id["fe.tm-mad-conf"]
    assert tm["status"] == "fail" and 'DISK_TYPE=""' in tm["found"]
    assert 'DISK_TYPE = "BLOCK"' in tm["fix"]
    assert by_id["fe.oned-drivers"]["status"] == "pass"
    # the inline password still logs in (it wins over EQL_PASS_FILE, as in the driver)
    assert by_id["san.login"]["status"] == "pass"
    assert report["summary"]["fail"] == sum(r["status"] == "fail" for r in report["results"])


def test_list_and_bad_skip(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "eqliscsi", "preflight", "--list"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert "san.host-key" in done.stdout and "host.node-startup" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "eqliscsi", "preflight", "--skip", "san.nope", "--conf",
         str(tmp_path / "x.conf")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "san.nope" in bad.stderr
