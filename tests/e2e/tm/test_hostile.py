"""Hostile argv reaches no shell: rejected before ssh, onevm or the group is contacted.

The remotes run as oned runs them (rig.oned, 4.4's unescaped ``sh -c`` included); a
recording ``ssh``/``onevm``/``onedatastore`` first on PATH proves that nothing was started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.oned import OnedSimulator
from rig.oned.simulator import ONE_PATH

CASES = [
    ("clone", ["fe:img.7", "h1;touch${IFS}/tmp/x:/var/lib/one/datastores/0/5/disk.0", "5", "0"]),
    ("clone", ["fe:img.7", "-oProxyCommand=id:/var/lib/one/datastores/0/5/disk.0", "5", "0"]),
    ("clone", ["fe:img.7", "h1:/var/lib/one/datastores/0/5/$(id)/disk.0", "5", "0"]),
    ("clone", ["fe:img.7", "h1:/etc/disk.0", "5", "0"]),
    ("clone", ["fe:img.7", "h1:/var/lib/one/datastores/0/6/disk.0", "5", "0"]),
    ("clone", ["fe:img.7", "h1:/var/lib/one/datastores/0/5/../../../../etc/disk.0", "5", "0"]),
    ("clone", ["fe:img.7;id", "h1:/var/lib/one/datastores/0/5/disk.0", "5", "0"]),
    ("clone", ["fe:-rf", "h1:/var/lib/one/datastores/0/5/disk.0", "5", "0"]),
    ("ln", ["fe:img.7", "h1:/var/lib/one/datastores/0/5/disk.0`id`", "5", "0"]),
    ("mv", ["h1:/var/lib/one/datastores/0/5/disk.0", "h2:/root/.ssh/disk.0", "5", "0"]),
    ("delete", ["h1:/var/lib/one/datastores/0/9/disk.0", "5", "0"]),
    ("delete", ["h1 :/var/lib/one/datastores/0/5/disk.0", "5", "0"]),
    ("mvds", ["h1:/tmp/disk.0", "img.7", "5", "0"]),
    ("cpds", ["h1:/var/lib/one/datastores/0/5/disk.0", "new;rm", "-1", "5", "0"]),
]


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name in ("ssh", "onevm", "onedatastore"):
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\nexit 1\n')
        exe.chmod(0o755)
    return bin_dir, calls


# 4.4 itself runs the transfer line through an unescaped `sh -c` (reference §6.2): a
# metacharacter there is interpreted by oned's shell before any driver runs, so the
# driver's own defence is judged with the versions that escape each word.
@pytest.mark.parametrize("profile", ["5.12", "7.0"])
@pytest.mark.parametrize(
    ("action", "args"), CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)]
)
def test_hostile_argv_rejected(
    tmp_path: Path, recorder: tuple[Path, Path], profile: str, action: str, args: list[str]
) -> None:
    bin_dir, calls = recorder
    sim = OnedSimulator.create(
        profile,
        tmp_path / "sim",
        conf="EQL_HOST=127.0.0.1\nEQL_USER=grpadmin\nEQL_PASS=unused\n",
        extra_env={"PATH": f"{bin_dir}:{ONE_PATH}", "EQLISCSI_LOCK_DIR": str(tmp_path / "l")},
    )
    out = sim.run_tm(action, args)
    assert not out.ok
    assert out.returncode == 2, out.stderr  # usage: refused, not attempted
    assert out.reason and "Traceback" not in out.stderr
    assert not calls.exists(), calls.read_text()
    assert not Path("/tmp/x").exists()
