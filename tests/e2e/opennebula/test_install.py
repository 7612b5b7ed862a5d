"""``eqliscsi install`` writes a remotes tree that oned can run as it is."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from eqliscsi.cli.install import install, install_remotes
from eqliscsi.errors import UsageError
from rig.oned import ImageSpec, OnedSimulator

REPO_REMOTES = Path(__file__).resolve().parents[3] / "remotes"


@pytest.fixture
def one_remotes(tmp_path: Path) -> Path:
    target = tmp_path / "one" / "remotes"
    target.mkdir(parents=True)
    return target


def test_install_writes_runnable_remotes(one_remotes: Path) -> None:
    written = install_remotes(one_remotes)
    stat = one_remotes / "datastore" / "eqliscsi" / "stat"
    assert stat in written
    assert stat.read_text().splitlines()[0] == f"#!{sys.executable}"
    assert stat.stat().st_mode & 0o111
    shipped = {p.name for p in (REPO_REMOTES / "datastore" / "eqliscsi").iterdir()}
    installed = {p.name for p in (one_remotes / "datastore" / "eqliscsi").iterdir()}
    assert shipped | {"eqliscsi.conf"} == installed
    conf = one_remotes / "datastore" / "eqliscsi" / "eqliscsi.conf"
    assert (
        conf.read_text() == (REPO_REMOTES / "datastore/eqliscsi/eqliscsi.conf.sample").read_text()
    )
    assert conf.stat().st_mode & 0o777 == 0o640


def test_install_never_overwrites_conf(one_remotes: Path) -> None:
    original = one_remotes / "datastore" / "eqliscsi" / "eqliscsi.conf"
    original.parent.mkdir(parents=True)
    original.write_text("EQL_HOST=10.9.9.9\n")
    install_remotes(one_remotes)
    install_remotes(one_remotes)  # twice: idempotent
    assert original.read_text() == "EQL_HOST=10.9.9.9\n"


@pytest.mark.parametrize("profile", ["4.4", "6.10", "7.0"])
def test_installed_tree_runs_under_simulator(
    tmp_path: Path, one_remotes: Path, qcow2_image: Path, profile: str
) -> None:
    install_remotes(one_remotes)
    sim = OnedSimulator.create(profile, tmp_path / "sim", remotes=one_remotes, interpreter=None)
    outcome = sim.run_ds("stat", sim.ds_document(ImageSpec(path=str(qcow2_image))), 0)
    assert outcome.ok, outcome.stderr
    assert outcome.info == "100"
    assert outcome.argv[0].endswith("/datastore/eqliscsi/stat")


@pytest.mark.parametrize(
    ("target", "interpreter", "match"),
    [
        pytest.param("missing", sys.executable, "not a directory", id="no-target"),
        pytest.param("ok", "python3", "not absolute", id="relative-interpreter"),
        pytest.param("ok", "/opt/my venv/bin/python", "blanks", id="blank-in-interpreter"),
    ],
)
def test_install_rejects(tmp_path: Path, target: str, interpreter: str, match: str) -> None:
    (tmp_path / "ok").mkdir()
    with pytest.raises(UsageError, match=match):
        install_remotes(tmp_path / target, interpreter=interpreter)


def test_install_without_source_tree(tmp_path: Path, one_remotes: Path) -> None:
    with pytest.raises(UsageError, match="source checkout"):
        install_remotes(one_remotes, source=tmp_path / "nothing")


def test_cli(one_remotes: Path) -> None:
    result = CliRunner().invoke(install, ["--remotes", str(one_remotes)])
    assert result.exit_code == 0, result.output
    assert f"installed {one_remotes}/datastore/eqliscsi/cp" in result.output
    assert 'NAME = "eqliscsi", LN_TARGET = "NONE", CLONE_TARGET = "SELF"' in result.output
    only = CliRunner().invoke(install, ["--print-oned-conf", "--remotes", "/nonexistent"])
    assert only.exit_code == 0 and "installed" not in only.output
    assert "DS_MAD_CONF" in only.output
    shutil.rmtree(one_remotes)
