"""``eqliscsi install`` writes a remotes tree that oned can run as it is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from eqliscsi.cli.install import MANIFEST, install, install_remotes
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
    assert shipped | {"eqliscsi.conf", MANIFEST} == installed
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
    with pytest.raises(UsageError, match=r"reinstall the eqliscsi package .* source checkout"):
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


def test_install_from_a_wheel_without_checkout(tmp_path: Path) -> None:
    # An admin's install: the wheel (not the checkout) must carry the remotes, and
    # `eqliscsi install` must find them where pip put them.
    root = Path(__file__).resolve().parents[3]
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(wheels), str(root)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("eqliscsi-*.whl")
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip would first uninstall this environment's own
    # (editable) eqliscsi to "replace" it, breaking every later test.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q",
         "--prefix", str(prefix),
         str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (site,) = prefix.glob("lib/python3*/site-packages")
    assert (prefix / "share/eqliscsi/remotes/tm/eqliscsi/ln").is_file()
    target = tmp_path / "one-remotes"
    target.mkdir()
    # The installed copy first on sys.path (the editable checkout stays behind it), run
    # from a directory that is not the checkout.
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import sys, eqliscsi.cli.install as i; from pathlib import Path; "
        f"assert i.__file__.startswith({str(site)!r}), i.__file__; "
        f"print(len(i.install_remotes(Path({str(target)!r}))))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    expected = {p.name for p in (root / "remotes/tm/eqliscsi").iterdir() if p.is_file()}
    assert {p.name for p in (target / "tm/eqliscsi").iterdir()} >= expected
    ln = target / "tm/eqliscsi/ln"
    assert os.access(ln, os.X_OK)
    assert ln.read_bytes().startswith(f"#!{sys.executable}\n".encode())
    # This environment's own install was left alone.
    still = subprocess.run(
        [sys.executable, "-c", "import eqliscsi; print(eqliscsi.__file__)"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert still.returncode == 0 and str(root) in still.stdout, still.stderr
    assert not os.access(target / "tm/eqliscsi/99-eqliscsi.rules", os.X_OK)
    assert (target / "datastore/eqliscsi/eqliscsi.conf").is_file()
