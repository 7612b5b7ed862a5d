"""``eqliscsi install``: per-version oned.conf blocks, owner, idempotence, uninstall."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from eqliscsi.cli.install import MANIFEST, install, install_remotes, oned_conf, uninstall_remotes
from eqliscsi.errors import UsageError


def _tree(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777, p.stat().st_uid)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def remotes(tmp_path: Path) -> Path:
    target = tmp_path / "remotes"
    target.mkdir()
    return target


VERSIONS = {
    # version: (present, absent)
    "4.4": (
        ['shared = "yes"', 'DISK_TYPE = "BLOCK"'],
        ["DS_MAD_CONF = [", "TM_MAD_SYSTEM", "DATASTORE_ENCRYPTED_ATTR ="],
    ),
    "5.12": (
        [
            "DS_MAD_CONF = [",
            'TM_MAD_SYSTEM = "shared"',
            'CLONE_TARGET_SHARED = "SELF"',
            'DISK_TYPE_SHARED = "BLOCK"',
            'DISK_TYPE = "BLOCK"',
        ],
        ["DATASTORE_ENCRYPTED_ATTR =", "DRIVER"],
    ),
    "6.6": (
        ['DATASTORE_ENCRYPTED_ATTR = "EQL_PASS"', 'DRIVER = "raw"', 'LN_TARGET_SHARED = "NONE"'],
        [],
    ),
    "6.10": (['DATASTORE_ENCRYPTED_ATTR = "EQL_PASS"', 'TM_MAD_SYSTEM = "shared"'], []),
    "7.0": (['DATASTORE_ENCRYPTED_ATTR = "EQL_PASS"', 'ALLOW_ORPHANS = "NO"'], []),
}


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_oned_conf_per_version(version: str) -> None:
    text = oned_conf(version)
    present, absent = VERSIONS[version]
    for needle in [*present, "-d dummy", "eqliscsi", 'TYPE = "IMAGE_DS"', 'DS_MAD = "eqliscsi"']:
        assert needle in text, needle
    for needle in absent:
        assert needle not in text, needle
    out = CliRunner().invoke(install, ["--print-oned-conf", "--oned-version", version])
    assert out.exit_code == 0 and out.output == text


@pytest.mark.parametrize("bad", ["3.8", "eight", "8.0"])
def test_bad_version_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="OpenNebula"):
        oned_conf(bad)


def test_install_is_idempotent_and_uninstall_removes_it(remotes: Path) -> None:
    admin = remotes / "datastore" / "fs"
    admin.mkdir(parents=True)
    (admin / "cp").write_text("#!/bin/sh\n")  # another driver's file: never touched
    first = install_remotes(remotes)
    assert first and (remotes / "datastore" / "eqliscsi" / MANIFEST).is_file()
    before = _tree(remotes)
    assert install_remotes(remotes) == []  # nothing to write the second time
    assert _tree(remotes) == before
    conf = remotes / "datastore" / "eqliscsi" / "eqliscsi.conf"
    assert before[str(conf.relative_to(remotes))][1] == 0o640
    assert before["tm/eqliscsi/resize"][1] == 0o755
    conf.write_text("EQL_HOST=10.0.0.9\n")  # the admin's edit survives reinstall and uninstall
    install_remotes(remotes)
    assert conf.read_text() == "EQL_HOST=10.0.0.9\n"
    removed, kept = uninstall_remotes(remotes)
    assert kept == [conf]
    assert {p.name for p in removed} >= {"cp", "mkfs", "resize", "eqliscsi.conf.sample"}
    assert sorted(str(p.relative_to(remotes)) for p in remotes.rglob("*") if p.is_file()) == [
        "datastore/eqliscsi/eqliscsi.conf",
        "datastore/fs/cp",
    ]
    assert not (remotes / "tm" / "eqliscsi").exists()
    with pytest.raises(UsageError, match="manifest"):
        uninstall_remotes(remotes)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_root_install_gives_files_the_remotes_owner(remotes: Path) -> None:
    os.chown(remotes, 4321, 4322)
    install_remotes(remotes)
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in remotes.rglob("*")}
    assert owners == {(4321, 4322)}


def test_cli_install_then_uninstall(remotes: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(install, ["--remotes", str(remotes), "--oned-version", "5.12"])
    assert out.exit_code == 0, out.output
    assert "installed" in out.output and "TM_MAD_SYSTEM" in out.output
    again = runner.invoke(install, ["--remotes", str(remotes), "--oned-version", "5.12"])
    assert "already up to date" in again.output
    gone = runner.invoke(install, ["--remotes", str(remotes), "--uninstall"])
    assert gone.exit_code == 0, gone.output
    assert "removed" in gone.output
    assert not any(p.is_file() for p in remotes.rglob("*"))
