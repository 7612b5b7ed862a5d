"""Front-end checks against files in a tmp dir, one table per check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import eqliscsi
from eqliscsi.cli.checks import frontend as fe
from eqliscsi.cli.checks.base import Status
from eqliscsi.cli.checks.inputs import reference_remotes
from eqliscsi.cli.checks.oned_conf import driver_list, parse_oned_conf
from eqliscsi.cli.install import install_remotes
from rig.need import need_executable
from tests.unit.preflight.conftest import GOOD_CONF, make_options, run

GOOD_ONED = """\
# OpenNebula 6.10 oned.conf excerpt
TM_MAD = [
    EXECUTABLE = "one_tm",
    ARGUMENTS = "-t 15 -d dummy,lvm,shared,fs_lvm,qcow2,ssh,ceph,eqliscsi"  # ours last
]
DATASTORE_MAD = [
    EXECUTABLE = "one_datastore",
    ARGUMENTS  = "-t 15 -d dummy,fs,lvm,ceph,eqliscsi -s shared,ssh,ceph"
]
TM_MAD_CONF = [ NAME = "ceph", LN_TARGET = "NONE", CLONE_TARGET = "SELF", SHARED = "YES" ]
TM_MAD_CONF = [
    NAME = "eqliscsi", LN_TARGET = "NONE", CLONE_TARGET = "SELF", SHARED = "YES",
    DRIVER = "raw", DISK_TYPE = "BLOCK"
]
"""


@pytest.mark.parametrize(
    ("text", "status", "needle"),
    [
        pytest.param(GOOD_ONED, Status.PASS, "TM_MAD and DATASTORE_MAD", id="registered"),
        pytest.param(GOOD_ONED.replace(",eqliscsi\"  #", "\"  #"), Status.FAIL, "TM_MAD do not",
                     id="tm-mad-lacks-driver"),
        pytest.param(GOOD_ONED.replace("ceph,eqliscsi -s", "ceph -s"), Status.FAIL,
                     "DATASTORE_MAD do not", id="ds-mad-lacks-driver"),
        pytest.param("# TM_MAD = [ ARGUMENTS = \"-d eqliscsi\" ]\n", Status.FAIL, "TM_MAD and",
                     id="commented-out"),
    ],
)  # fmt: skip
async def test_oned_drivers(tmp_path: Path, text: str, status: Status, needle: str) -> None:
    oned = tmp_path / "oned.conf"
    oned.write_text(text)
    f = await run(fe.check_oned_drivers, make_options(tmp_path, oned_conf=oned))
    assert f.status is status
    assert needle in f.found
    assert (f.fix == "") == (status is Status.PASS)


@pytest.mark.parametrize(
    ("text", "status", "needle"),
    [
        pytest.param(GOOD_ONED, Status.PASS, "", id="complete"),
        pytest.param(GOOD_ONED.replace(',\n    DRIVER = "raw", DISK_TYPE = "BLOCK"', ""),
                     Status.FAIL, 'DISK_TYPE=""', id="no-disk-type"),
        pytest.param(GOOD_ONED.replace('DISK_TYPE = "BLOCK"', 'DISK_TYPE = "FILE"'),
                     Status.FAIL, 'DISK_TYPE="FILE"', id="disk-type-file"),
        pytest.param(GOOD_ONED.replace('SHARED = "YES",\n    DRIVER', 'SHARED = "NO",\n    DRIVER'),
                     Status.FAIL, 'SHARED="NO"', id="not-shared"),
        pytest.param(GOOD_ONED.replace('NAME = "eqliscsi"', 'NAME = "iscsi"'), Status.FAIL,
                     "no TM_MAD_CONF", id="missing"),
    ],
)  # fmt: skip
async def test_tm_mad_conf(tmp_path: Path, text: str, status: Status, needle: str) -> None:
    oned = tmp_path / "oned.conf"
    oned.write_text(text)
    f = await run(fe.check_tm_mad_conf, make_options(tmp_path, oned_conf=oned))
    assert f.status is status, f
    assert needle in f.found
    if status is Status.FAIL and "DISK_TYPE" in needle:
        assert 'DISK_TYPE = "BLOCK"' in f.fix


async def test_oned_conf_missing_is_a_skip(tmp_path: Path) -> None:
    f = await run(fe.check_oned_drivers, make_options(tmp_path, oned_conf=tmp_path / "none"))
    assert f.status is Status.SKIP


@pytest.mark.parametrize(
    ("args", "drivers"),
    [
        pytest.param("-t 15 -d dummy,eqliscsi", ("dummy", "eqliscsi"), id="plain"),
        pytest.param("-d a, -t 3", ("a",), id="trailing-comma"),
        pytest.param("-t 15", (), id="none"),
        pytest.param("-ddummy,x", ("dummy", "x"), id="glued"),
    ],
)
def test_driver_list(args: str, drivers: tuple[str, ...]) -> None:
    assert driver_list(args) == drivers


def test_parse_oned_conf_keeps_hashes_inside_quotes() -> None:
    conf = parse_oned_conf('TM_MAD_CONF = [ NAME = "a#b", SHARED = yes ]  # comment\n')
    assert conf.tm_mad_conf("a#b") == {"NAME": "a#b", "SHARED": "yes"}


@pytest.mark.parametrize(
    ("conf", "status", "needle"),
    [
        pytest.param(None, Status.PASS, "parses", id="good"),
        pytest.param(GOOD_CONF + "EQL_POLL=x\n", Status.WARN, "EQL_POLL", id="unknown-key"),
        pytest.param(GOOD_CONF + "EQL_POOL=$(id)\n", Status.FAIL, "line 8", id="command-subst"),
        pytest.param("EQL_USER=a\nEQL_PASS=b\n", Status.FAIL, "EQL_HOST", id="no-host"),
        pytest.param(GOOD_CONF + "EQL_POOL='a b'\n", Status.FAIL, "EQL_POOL", id="bad-pool"),
    ],
)
async def test_conf(tmp_path: Path, conf: str | None, status: Status, needle: str) -> None:
    f = await run(fe.check_conf, make_options(tmp_path, conf))
    assert f.status is status, f
    assert needle in f.found


@pytest.mark.parametrize(
    ("conf", "mode", "status"),
    [
        pytest.param("EQL_HOST=h\nEQL_USER=u\nEQL_PASS=pw-inline-1\n", 0o640, Status.PASS,
                     id="inline-0640"),
        pytest.param("EQL_HOST=h\nEQL_USER=u\nEQL_PASS=pw-inline-1\n", 0o644, Status.FAIL,
                     id="inline-world-readable"),
        pytest.param(None, 0o644, Status.PASS, id="pass-file-0600-conf-0644"),
        pytest.param("EQL_HOST=h\nEQL_USER=u\n", 0o644, Status.SKIP, id="no-secret"),
    ],
)  # fmt: skip
async def test_conf_permissions(
    tmp_path: Path, conf: str | None, mode: int, status: Status
) -> None:
    opts = make_options(tmp_path, conf)
    opts.conf_path.chmod(mode)
    f = await run(fe.check_conf_permissions, opts)
    assert f.status is status, f
    assert "pw-inline-1" not in f.found + f.fix
    if status is Status.FAIL:
        assert "chmod 600" in f.fix


async def test_world_readable_password_file(tmp_path: Path) -> None:
    opts = make_options(tmp_path)
    (tmp_path / "password").chmod(0o604)
    f = await run(fe.check_conf_permissions, opts)
    assert f.status is Status.FAIL
    assert "EQL_PASS_FILE" in f.found


def _remotes(root: Path, names: list[str], content: bytes = b"#!/bin/sh\n") -> None:
    for rel in names:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        p.chmod(0o755)


_NAMES = ["datastore/eqliscsi/cp", "datastore/eqliscsi/stat", "tm/eqliscsi/ln"]


@pytest.mark.parametrize(
    ("mutate", "status", "needle"),
    [
        pytest.param(None, Status.PASS, "all 3", id="installed"),
        pytest.param("delete", Status.FAIL, "missing", id="missing"),
        pytest.param("chmod", Status.FAIL, "not executable", id="not-executable"),
        pytest.param("edit", Status.FAIL, "differ", id="other-version"),
    ],
)
async def test_remotes(tmp_path: Path, mutate: str | None, status: Status, needle: str) -> None:
    ref, inst = tmp_path / "ref", tmp_path / "inst"
    _remotes(ref, _NAMES)
    _remotes(inst, _NAMES)
    victim = inst / _NAMES[1]
    if mutate == "delete":
        victim.unlink()
    elif mutate == "chmod":
        victim.chmod(0o644)
    elif mutate == "edit":
        victim.write_bytes(b"#!/bin/sh\nexit 1\n")
    opts = make_options(tmp_path, remotes_dir=inst, reference_remotes=ref)
    f = await run(fe.check_remotes, opts)
    assert f.status is status, f
    assert needle in f.found


@pytest.mark.parametrize(
    ("shebang", "status", "needle"),
    [
        pytest.param(f"#!{sys.executable}", Status.PASS, eqliscsi.__version__, id="same-python"),
        pytest.param("#!/bin/false", Status.FAIL, "cannot import", id="broken-interpreter"),
        pytest.param("#!/nonexistent/python3", Status.FAIL, "cannot run", id="no-interpreter"),
    ],
)
async def test_remotes_version(tmp_path: Path, shebang: str, status: Status, needle: str) -> None:
    inst = tmp_path / "inst"
    _remotes(inst, ["datastore/eqliscsi/stat"], f"{shebang}\nprint()\n".encode())
    f = await run(fe.check_remotes_version, make_options(tmp_path, remotes_dir=inst))
    assert f.status is status, f
    assert needle in f.found


@pytest.mark.parametrize(
    ("version", "dispatcher", "status"),
    [
        pytest.param("4.4.1", True, Status.PASS, id="4.4-with-dispatcher"),
        pytest.param("4.4.1", False, Status.FAIL, id="4.4-stock-premigrate"),
        pytest.param("4.4.1", "pre-only", Status.FAIL, id="4.4-premigrate-only"),
        pytest.param("6.10.0\n", False, Status.PASS, id="6.10-not-needed"),
        pytest.param(None, False, Status.SKIP, id="no-version-file"),
    ],
)
async def test_migrate_dispatcher(
    tmp_path: Path, version: str | None, dispatcher: bool | str, status: Status
) -> None:
    inst = tmp_path / "remotes"
    (inst / "tm" / "shared").mkdir(parents=True)
    if version is not None:
        (inst / "VERSION").write_text(version)
    for name in ("premigrate", "postmigrate"):
        hooked = dispatcher is True or (dispatcher == "pre-only" and name == "premigrate")
        body = "#!/bin/sh\n" + ('exec ../eqliscsi/$0 "$@"\n' if hooked else "exit 0\n")
        (inst / "tm" / "shared" / name).write_text(body)
    f = await run(fe.check_migrate_dispatcher, make_options(tmp_path, remotes_dir=inst))
    assert f.status is status, f


@pytest.mark.parametrize(
    ("system_tm", "hooked", "status"),
    [
        pytest.param("ssh", True, Status.PASS, id="ssh-hooked"),
        pytest.param("shared", False, Status.WARN, id="stock-exit-0"),
    ],
)
async def test_failmigrate_hook(
    tmp_path: Path, system_tm: str, hooked: bool, status: Status
) -> None:
    inst = tmp_path / "remotes"
    (inst / "tm" / system_tm).mkdir(parents=True)
    (inst / "tm" / "eqliscsi").mkdir()
    (inst / "tm" / "eqliscsi" / "failmigrate").write_text("#!/bin/sh\n# eqliscsi\n")
    body = "# eqliscsi migrate hook\n" if hooked else "exit 0\n"
    (inst / "tm" / system_tm / "failmigrate").write_text("#!/bin/sh\n" + body)
    f = await run(fe.check_failmigrate_hook, make_options(tmp_path, remotes_dir=inst))
    assert f.status is status, f
    if status is Status.WARN:
        assert "--migrate-hooks" in f.fix


@pytest.mark.parametrize(
    ("template", "status", "needle"),
    [
        pytest.param({"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "DISK_TYPE": "BLOCK"},
                     Status.PASS, "BLOCK", id="good"),
        pytest.param({"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi"}, Status.FAIL, "DISK_TYPE",
                     id="no-disk-type"),
        pytest.param({"DS_MAD": "fs", "TM_MAD": "eqliscsi", "DISK_TYPE": "BLOCK"}, Status.FAIL,
                     "DS_MAD", id="wrong-ds-mad"),
        pytest.param(None, Status.SKIP, "no datastore", id="none"),
    ],
)  # fmt: skip
async def test_datastore_template(
    tmp_path: Path, template: dict[str, str] | None, status: Status, needle: str
) -> None:
    f = await run(fe.check_datastore_template, make_options(tmp_path, template=template))
    assert f.status is status, f
    assert needle in f.found


async def test_qemu_img_has_iscsi(tmp_path: Path) -> None:
    need_executable("qemu-img", "qemu-utils")

    f = await run(fe.check_qemu_img, make_options(tmp_path))
    assert f.status is Status.PASS, f


async def test_qemu_img_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    f = await run(fe.check_qemu_img, make_options(tmp_path))
    assert f.status is Status.FAIL
    assert "qemu-utils" in f.fix


async def test_remotes_installed_by_eqliscsi_install_pass(tmp_path: Path) -> None:
    """The real installer pins its interpreter in every #! line; that is not a difference."""
    target = tmp_path / "remotes"
    target.mkdir()
    install_remotes(target, interpreter=sys.executable)
    opts = make_options(tmp_path, remotes_dir=target, reference_remotes=reference_remotes())
    f = await run(fe.check_remotes, opts)
    assert f.status is Status.PASS, f
    f = await run(fe.check_remotes_version, opts)
    assert f.status is Status.PASS, f
    (target / "datastore" / "eqliscsi" / "cp").write_text(f"#!{sys.executable}\nraise SystemExit\n")
    f = await run(fe.check_remotes, opts)
    assert f.status is Status.FAIL and "datastore/eqliscsi/cp" in f.found
    assert f"eqliscsi install --remotes {target}" in f.fix
