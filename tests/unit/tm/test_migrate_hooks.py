"""The opt-in system-TM dispatcher: install, dispatch as oned calls it, restore."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from eqliscsi.cli.install import install
from eqliscsi.errors import UsageError
from eqliscsi.opennebula.migrate_hooks import BACKUP_SUFFIX, install_hooks, restore_hooks
from rig.oned import DiskSpec, VmSpec
from rig.oned.documents import vm_xml

REPO = Path(__file__).resolve().parents[3]


def _recorder(path: Path, log: Path, status: int = 0) -> None:
    """A remote that records its name, argv and stdin (Python: the hook runs ours with
    its own interpreter; a system TM's original runs by its #! line)."""
    path.write_text(
        "#!/usr/bin/env python3\nimport os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(' '.join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + '\\n')\n"
        f"with open({str(log) + '.stdin'!r}, 'ab') as f:\n"
        "    f.write(sys.stdin.buffer.read())\n"
        f"sys.exit({status})\n"
    )
    path.chmod(0o755)


@pytest.fixture
def remotes(tmp_path: Path) -> Path:
    root = tmp_path / "remotes"
    for d in ("tm/shared", "tm/common", "tm/eqliscsi"):
        (root / d).mkdir(parents=True)
    _recorder(root / "tm" / "common" / "failmigrate", tmp_path / "stock")
    os.symlink("../common/failmigrate", root / "tm" / "shared" / "failmigrate")
    _recorder(root / "tm" / "eqliscsi" / "failmigrate", tmp_path / "ours")
    return root


def _run(script: Path, args: list[str], stdin: bytes) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [str(script), *args], input=stdin, env=env, timeout=60, check=False
    ).returncode


def _doc(version: str, tm_mad: str) -> bytes:
    vm = VmSpec(42, disks=[DiskSpec(0, tm_mad=tm_mad), DiskSpec(1, image_id=None)])
    return base64.b64encode(vm_xml(version, vm).encode())


ARGS = ["h1", "h2", "/var/lib/one/datastores/0/42", "42", "0"]


def test_failmigrate_reaches_eqliscsi_with_stdin(remotes: Path, tmp_path: Path) -> None:
    (remotes / "VERSION").write_text("6.10.0\n")
    hooked = install_hooks(remotes, ["shared"], interpreter=sys.executable)
    assert [p.name for p in hooked] == ["failmigrate"]
    backup = remotes / "tm" / "shared" / ("failmigrate" + BACKUP_SUFFIX)
    assert os.readlink(backup) == "../common/failmigrate"
    doc = _doc("6.10.0", "eqliscsi") + b"\n"
    assert _run(remotes / "tm" / "shared" / "failmigrate", ARGS, doc) == 0
    # The original runs with the same argv (its $0 is the backup's name).
    assert (tmp_path / "stock").read_text() == f"failmigrate{BACKUP_SUFFIX} {' '.join(ARGS)}\n"
    assert (tmp_path / "ours").read_text() == "failmigrate " + " ".join([*ARGS, "shared"]) + "\n"
    assert (tmp_path / "ours.stdin").read_bytes() == doc
    # Installing again changes nothing; the original stays the backup.
    install_hooks(remotes, ["shared"], interpreter=sys.executable)
    assert os.readlink(backup) == "../common/failmigrate"
    assert restore_hooks(remotes) == [remotes / "tm" / "shared" / "failmigrate"]
    assert os.readlink(remotes / "tm" / "shared" / "failmigrate") == "../common/failmigrate"
    assert not backup.exists()


def test_vm_without_eqliscsi_disks_is_not_dispatched(remotes: Path, tmp_path: Path) -> None:
    install_hooks(remotes, ["shared"], interpreter=sys.executable)
    assert _run(remotes / "tm" / "shared" / "failmigrate", ARGS, _doc("7.0.0", "ceph")) == 0
    assert (tmp_path / "stock").exists()
    assert not (tmp_path / "ours").exists()


def test_failure_of_eqliscsi_is_reported(remotes: Path, tmp_path: Path) -> None:
    _recorder(remotes / "tm" / "eqliscsi" / "failmigrate", tmp_path / "ours", status=5)
    install_hooks(remotes, ["shared"], interpreter=sys.executable)
    assert _run(remotes / "tm" / "shared" / "failmigrate", ARGS, _doc("7.0.0", "eqliscsi")) == 5


def test_opennebula_4_hooks_pre_and_post_with_template_in_argv(
    remotes: Path, tmp_path: Path
) -> None:
    (remotes / "VERSION").write_text("4.4.1")
    _recorder(remotes / "tm" / "shared" / "premigrate", tmp_path / "stock")
    _recorder(remotes / "tm" / "eqliscsi" / "premigrate", tmp_path / "ours")
    names = sorted(p.name for p in install_hooks(remotes, ["shared"], interpreter=sys.executable))
    assert names == ["failmigrate", "postmigrate", "premigrate"]
    doc = _doc("4.4.1", "eqliscsi").decode()
    assert _run(remotes / "tm" / "shared" / "premigrate", [*ARGS, doc], b"") == 0
    assert (tmp_path / "ours").read_text() == "premigrate " + " ".join([*ARGS, doc]) + "\n"
    restore_hooks(remotes)
    # postmigrate had no original: restoring removes the dispatcher.
    assert not (remotes / "tm" / "shared" / "postmigrate").exists()
    assert "eqliscsi" not in (remotes / "tm" / "shared" / "premigrate").read_text()


@pytest.mark.parametrize("tm", ["eqliscsi", "nope", "../x"])
def test_refuses_non_system_tms(remotes: Path, tm: str) -> None:
    with pytest.raises(UsageError):
        install_hooks(remotes, [tm], interpreter=sys.executable)


def test_eqliscsi_install_migrate_hooks_and_restore(remotes: Path, tmp_path: Path) -> None:
    (remotes / "datastore").mkdir()
    result = CliRunner().invoke(install, ["--remotes", str(remotes), "--migrate-hooks"])
    assert result.exit_code == 0, result.output
    hook = remotes / "tm" / "shared" / "failmigrate"
    assert f"hooked {hook}" in result.output
    assert (remotes / "tm" / "eqliscsi" / "failmigrate").read_bytes().startswith(b"#!/")
    assert b"eqliscsi" in hook.read_bytes()  # what preflight's fe.failmigrate-hook looks for
    result = CliRunner().invoke(install, ["--remotes", str(remotes), "--restore-migrate-hooks"])
    assert result.exit_code == 0, result.output
    assert os.readlink(hook) == "../common/failmigrate"
