"""The remotes run as oned runs them, for every version profile of rig.oned."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest

from rig.oned import PROFILES, DatastoreSpec, DiskSpec, ImageSpec, OnedSimulator, VmSpec

ALL = sorted(PROFILES)


def sim_for(tmp_path: Path, profile: str, **kwargs: object) -> OnedSimulator:
    return OnedSimulator.create(profile, tmp_path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", ALL)
def test_stat_local_qcow2(tmp_path: Path, qcow2_image: Path, profile: str) -> None:
    sim = sim_for(tmp_path, profile)
    outcome = sim.run_ds("stat", sim.ds_document(ImageSpec(path=str(qcow2_image))), 0)
    assert outcome.ok, outcome.stderr
    assert outcome.info == "100"  # virtual size in MB, not the few KiB the file takes
    assert outcome.stdout == "100\n"
    assert "Traceback" not in outcome.stderr
    assert any("format qcow2" in line for line in outcome.logs)


@pytest.mark.parametrize("profile", ALL)
def test_stat_without_version_file(tmp_path: Path, qcow2_image: Path, profile: str) -> None:
    sim = sim_for(tmp_path, profile, write_version=False)
    assert not (sim.remotes / "VERSION").exists()
    outcome = sim.run_ds("stat", sim.ds_document(ImageSpec(path=str(qcow2_image))), 3)
    assert outcome.ok and outcome.info == "100"


RESTRICTED_MSG = (
    "Not allowed to copy image file {path}: it is under {dir}; add its directory to "
    "SAFE_DIRS or move the file."
)


@pytest.mark.parametrize("profile", ALL)
def test_stat_restricted_dir(tmp_path: Path, qcow2_image: Path, profile: str) -> None:
    sim = sim_for(tmp_path, profile)
    ds = DatastoreSpec(template={"RESTRICTED_DIRS": str(qcow2_image.parent)})
    outcome = sim.run_ds("stat", sim.ds_document(ImageSpec(path=str(qcow2_image)), ds), 0)
    assert not outcome.ok and outcome.returncode == 1
    assert outcome.reason == RESTRICTED_MSG.format(path=qcow2_image, dir=qcow2_image.parent)
    assert "Traceback" not in outcome.stderr


@pytest.mark.parametrize("profile", ALL)
@pytest.mark.parametrize(
    ("image", "needle"),
    [
        pytest.param(ImageSpec(path=""), "has no PATH", id="no-path"),
        pytest.param(ImageSpec(path="relative.img"), "not an absolute path", id="relative"),
        pytest.param(ImageSpec(path="/nonexistent/x.img"), "Cannot determine size", id="missing"),
        pytest.param(ImageSpec(path="ftp://x/y"), "not supported", id="scheme"),
        pytest.param(ImageSpec(path="/tmp/x", size_mb=-4), "negative", id="negative-size"),
        pytest.param(ImageSpec(path="/tmp/$(reboot)\n;x"), "newline", id="hostile-path"),
    ],
)
def test_stat_errors(tmp_path: Path, profile: str, image: ImageSpec, needle: str) -> None:
    sim = sim_for(tmp_path, profile)
    outcome = sim.run_ds("stat", sim.ds_document(image), 0)
    assert not outcome.ok
    assert outcome.reason is not None and needle in outcome.reason
    assert "Traceback" not in outcome.stderr


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;'
    '&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    "<DS_DRIVER_ACTION_DATA><IMAGE><PATH>&c;</PATH></IMAGE></DS_DRIVER_ACTION_DATA>"
)


@pytest.mark.parametrize("profile", ALL)
def test_xml_bomb(tmp_path: Path, profile: str) -> None:
    sim = sim_for(tmp_path, profile)
    outcome = sim.run_ds("stat", BOMB, 0)
    assert not outcome.ok and outcome.returncode == 2
    assert outcome.reason is not None and "DTD or entities" in outcome.reason


@pytest.mark.parametrize("profile", ALL)
def test_bad_base64(tmp_path: Path, profile: str) -> None:
    sim = sim_for(tmp_path, profile)
    conv = sim.profile.ds_convention
    if conv == "argv":
        outcome = sim.run_ds_raw("stat", ["!!notbase64!!", "0"], b"")
    elif conv == "dash-stdin":
        outcome = sim.run_ds_raw("stat", ["-", "0"], b"!!notbase64!!")
    else:
        outcome = sim.run_ds_raw("stat", ["0"], b"!!notbase64!!")
    assert not outcome.ok and outcome.returncode == 2
    assert outcome.reason is not None and "not valid base64" in outcome.reason


# --- the simulator itself, with trivial remotes ------------------------------------

PRINTING_REMOTE = textwrap.dedent(
    """\
    import sys
    sys.stdout.write({out!r})
    sys.stderr.write({err!r})
    sys.exit({rc})
    """
)


def install(sim: OnedSimulator, kind: str, action: str, body: str) -> None:
    path = sim.remotes / kind / "eqliscsi" / action
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)


@pytest.mark.parametrize(
    ("profile", "out", "ok", "info", "fmt"),
    [
        pytest.param("4.4", "vol.1\n", True, "vol.1", None, id="4.4-source"),
        pytest.param("5.12", "vol.1 raw\n", True, "vol.1", None, id="5.12-first-token"),
        pytest.param("6.6", "vol.1 raw\n", True, "vol.1", "raw", id="6.6-source-format"),
        pytest.param("6.10", "vol.1\n", False, "", None, id="6.10-format-missing"),
        pytest.param("7.0", "vol.1 raw\nnoise\n", True, "vol.1", "raw", id="7.0-first-line-only"),
    ],
)
def test_simulator_reads_cp_like_oned(
    tmp_path: Path, profile: str, out: str, ok: bool, info: str, fmt: str | None
) -> None:
    sim = sim_for(tmp_path, profile)
    install(sim, "datastore", "cp", PRINTING_REMOTE.format(out=out, err="", rc=0))
    outcome = sim.run_ds("cp", sim.ds_document(ImageSpec()), 7)
    assert (outcome.ok, outcome.info, outcome.format) == (ok, info, fmt)
    if not ok:
        assert outcome.reason == "CP operation succeeded but image FORMAT was not returned"


STDERR = (
    "INFO: cp: starting\nERROR MESSAGE --8<------\nthe pool is full\nERROR MESSAGE ------>8--\n"
)


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        pytest.param("4.4", "the pool is full", id="4.4-markers"),
        pytest.param("5.8", "the pool is full", id="5.8-markers"),
        pytest.param("5.12", "the pool is full", id="5.12-markers"),
        pytest.param(
            "6.10",
            "INFO: cp: starting ERROR MESSAGE --8<------ the pool is full ERROR MESSAGE ------>8--",
            id="6.10-whole-stderr",
        ),
        pytest.param(
            "7.0",
            "ERROR MESSAGE --8<------ the pool is full ERROR MESSAGE ------>8--",
            id="7.0-untagged",
        ),
    ],
)
def test_simulator_reads_errors_like_oned(tmp_path: Path, profile: str, reason: str) -> None:
    sim = sim_for(tmp_path, profile)
    install(sim, "datastore", "cp", PRINTING_REMOTE.format(out="", err=STDERR, rc=3))
    outcome = sim.run_ds("cp", sim.ds_document(ImageSpec()), 7)
    assert not outcome.ok and outcome.returncode == 3  # 4.4: from the "ExitCode:" line
    assert outcome.reason == reason
    assert "ExitCode" not in outcome.stderr


# A trivial TM remote that parses its call with the driver's own args module and
# reports what it understood.
MIGRATE_REMOTE = textwrap.dedent(
    """\
    import json, os, sys
    from pathlib import Path
    from eqliscsi.opennebula.args import parse_tm_call, read_version
    from eqliscsi.opennebula.driver_action import parse_vm
    remotes = Path(sys.argv[0]).resolve().parents[2]
    call = parse_tm_call(Path(sys.argv[0]).name, sys.argv[1:], sys.stdin.buffer.read,
                         read_version(remotes))
    vm = parse_vm(call.vm_document)
    Path(os.environ["REPORT"]).write_text(json.dumps({
        "argc": len(sys.argv) - 1, "sys_tm": call.sys_tm, "vm": vm.id,
        "mine": [d.disk_id for d in vm.disks_of("eqliscsi")],
        "src": call.src_host, "dst": call.dst_host, "dir": call.vm_dir,
    }))
    """
)


@pytest.mark.parametrize(
    ("profile", "argc", "sys_tm"),
    [
        pytest.param("4.4", 6, None, id="4.4-template-argv6"),
        pytest.param("5.8", 7, "shared", id="5.8-template-argv6-slave-argv7"),
        pytest.param("5.12", 6, "shared", id="5.12-stdin-slave"),
        pytest.param("6.6", 6, "shared", id="6.6-stdin-slave"),
        pytest.param("6.10", 6, "shared", id="6.10-stdin-slave"),
        pytest.param("7.0", 6, "shared", id="7.0-stdin-slave"),
    ],
)
def test_migrate_through_simulator(
    tmp_path: Path, profile: str, argc: int, sys_tm: str | None
) -> None:
    report = tmp_path / "report.json"
    sim = sim_for(tmp_path / "sim", profile, extra_env={"REPORT": str(report)})
    install(sim, "tm", "premigrate", MIGRATE_REMOTE)
    vm = VmSpec(
        id=42,
        disks=(
            DiskSpec(0),
            DiskSpec(1, persistent=True),
            DiskSpec(2, tm_mad="ceph"),
            DiskSpec(3, image_id=None),
        ),
    )
    outcome = sim.run_migrate(
        "premigrate", src="node1", dst="node2", vm_dir="/var/lib/one//datastores/0/42", vm=vm
    )
    assert outcome.ok, outcome.stderr
    got = json.loads(report.read_text())
    assert got == {
        "argc": argc,
        "sys_tm": sys_tm,
        "vm": 42,
        "mine": [0, 1],
        "src": "node1",
        "dst": "node2",
        "dir": "/var/lib/one/datastores/0/42",
    }


def test_tm_mixed_mode_script_preferred(tmp_path: Path) -> None:
    sim = sim_for(tmp_path, "6.10")
    install(sim, "tm", "clone", PRINTING_REMOTE.format(out="", err="", rc=0))
    install(sim, "tm", "clone.shared", PRINTING_REMOTE.format(out="", err="special\n", rc=4))
    args = ["fe:vol.1", "node1:/d/42/disk.0", "42", "100"]
    assert sim.run_tm("clone", args).ok
    outcome = sim.run_tm("clone", args, sys_tm="shared")
    assert (outcome.ok, outcome.returncode, outcome.reason) == (False, 4, "special")


def test_stdin_document_has_no_newline(tmp_path: Path) -> None:
    report = tmp_path / "stdin.bin"
    sim = sim_for(tmp_path / "sim", "7.0", extra_env={"REPORT": str(report)})
    install(
        sim,
        "datastore",
        "monitor",
        "import os, sys\nopen(os.environ['REPORT'], 'wb').write(sys.stdin.buffer.read())\n"
        "print('USED_MB=1\\nTOTAL_MB=3\\nFREE_MB=2')\n",
    )
    outcome = sim.run_ds("monitor", sim.ds_document(None), 100)
    assert outcome.ok and outcome.monitor == {"USED_MB": "1", "TOTAL_MB": "3", "FREE_MB": "2"}
    data = report.read_bytes()
    assert not data.endswith(b"\n")
    assert base64.b64decode(data).startswith(b"<DS_DRIVER_ACTION_DATA><DATASTORE>")
    assert outcome.argv[1:] == ("100",)
