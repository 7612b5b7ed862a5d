"""``eqliscsi discover`` / ``eqliscsi probe`` as real processes against real tgt.

Secrets reach the CLI only through a file or the environment; these tests watch the
process table while the CLI runs to prove no secret ever sits in an argv (its own
or a child's), and read every output stream for it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.targets.base import TargetBackend

from .conftest import MakeDisk, Quirks, chap
from .judges import iscsi_ls, iscsi_ls_targets

pytestmark = [pytest.mark.tgt]

IQN = "iqn.2026-01.test.eqliscsi:cli"
USER, SECRET = "cli-user", "cli-secret-0123"
TUSER, TSECRET = "cli-target", "cli-tsecret-456"
ROOT = Path(__file__).resolve().parents[3]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def run_cli(
    *args: str, env: dict[str, str] | None = None, secrets: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; while it runs, check the argv of it and its children for secrets."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EQLISCSI_")}
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "eqliscsi", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=ROOT,
    )
    seen = 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in [proc.pid, *_descendants(proc.pid)]:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            seen += 1
            for secret in secrets:
                assert secret.encode() not in cmdline, f"secret in argv of {pid}"
        time.sleep(0.005)
    out, err = proc.communicate(timeout=60)
    assert seen > 0, "the CLI exited before its argv could be inspected"
    for secret in secrets:
        assert secret not in out and secret not in err
    assert "Traceback" not in err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def secret_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    chap_file, mutual_file = tmp_path / "chap.secret", tmp_path / "mutual.secret"
    for path, value in ((chap_file, SECRET), (mutual_file, TSECRET)):
        path.write_text(value + "\n")
        path.chmod(0o600)
    yield chap_file, mutual_file


@pytest.mark.judge
def test_discover_json_matches_iscsi_ls(backend: TargetBackend, make_disk: MakeDisk) -> None:
    for n in range(3):
        backend.create_target(f"{IQN}{n}", make_disk())
    done = run_cli("discover", str(backend.portal), "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing == [
        {
            "name": f"{IQN}{n}",
            "portals": [{"address": "127.0.0.1", "port": backend.portal.port, "tpgt": 1}],
        }
        for n in range(3)
    ]
    judge = iscsi_ls_targets(iscsi_ls(backend.portal).stdout)
    assert {t["name"]: [f"{p['address']}:{p['port']},{p['tpgt']}" for p in t["portals"]]
            for t in listing} == judge  # fmt: skip


def test_discover_plain_table(backend: TargetBackend, make_disk: MakeDisk) -> None:
    backend.create_target(IQN, make_disk())
    done = run_cli("discover", str(backend.portal))
    assert done.returncode == 0, done.stderr
    assert IQN in done.stdout and f"{backend.portal},1" in done.stdout


def test_discover_with_discovery_chap_from_file_and_env(
    backend: TargetBackend, make_disk: MakeDisk, secret_files: tuple[Path, Path]
) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_discovery_chap(chap(USER, SECRET), chap(TUSER, TSECRET))
    chap_file, mutual_file = secret_files
    by_file = run_cli(
        "discover", str(backend.portal), "--json", "--chap-user", USER,
        "--chap-secret-file", str(chap_file), "--mutual-user", TUSER,
        "--mutual-secret-file", str(mutual_file), secrets=(SECRET, TSECRET),
    )  # fmt: skip
    assert by_file.returncode == 0, by_file.stderr
    assert [t["name"] for t in json.loads(by_file.stdout)] == [IQN]
    by_env = run_cli(
        "discover", str(backend.portal), "--json", "--chap-user", USER, "--mutual-user", TUSER,
        env={"EQLISCSI_CHAP_SECRET": SECRET, "EQLISCSI_MUTUAL_SECRET": TSECRET},
        secrets=(SECRET, TSECRET),
    )  # fmt: skip
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout) == json.loads(by_file.stdout)


def test_probe_json_size_equals_backing_file(
    backend: TargetBackend,
    make_disk: MakeDisk,
    quirks: Quirks,
    secret_files: tuple[Path, Path],
) -> None:
    disk = make_disk(size_bytes=48 << 20)
    backend.create_target(IQN, disk)
    backend.set_chap(IQN, chap(USER, SECRET), None)
    done = run_cli(
        "probe", str(backend.portal), IQN, "--json", "--chap-user", USER,
        "--chap-secret-file", str(secret_files[0]), secrets=(SECRET,),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["target"] == IQN
    (lun,) = result["luns"]
    assert lun["lun"] == backend.lun_of(IQN) and lun["size_bytes"] == disk.stat().st_size
    assert set(lun) == {"lun", "size_bytes", "block_size", "vendor", "product", "serial"}
    plain = run_cli(
        "probe", str(backend.portal), IQN, "--lun", str(backend.lun_of(IQN)), "--chap-user", USER,
        env={"EQLISCSI_CHAP_SECRET": SECRET}, secrets=(SECRET,),
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "48.0 MiB" in plain.stdout and quirks.vendor_product[1] in plain.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "words"),
    [
        pytest.param(("--chap-user", USER), {"EQLISCSI_CHAP_SECRET": "wrong-secret-999"}, 4,
                     "CHAP", id="wrong-secret"),
        pytest.param((), {}, 4, "authentication", id="no-credentials"),
        pytest.param(("--chap-user", USER), {}, 2, "EQLISCSI_CHAP_SECRET", id="no-secret"),
        pytest.param(("--mutual-user", TUSER), {"EQLISCSI_MUTUAL_SECRET": TSECRET}, 2,
                     "--chap-user", id="mutual-without-user"),
    ],
)  # fmt: skip
def test_probe_failure_is_one_line(
    backend: TargetBackend,
    make_disk: MakeDisk,
    args: tuple[str, ...],
    env: dict[str, str],
    code: int,
    words: str,
) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_chap(IQN, chap(USER, SECRET), None)
    done = run_cli(
        "probe", str(backend.portal), IQN, *args, env=env,
        secrets=(SECRET, TSECRET, "wrong-secret-999"),
    )  # fmt: skip
    assert done.returncode == code
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("eqliscsi: ") and words in lines[0]


def test_silent_portal_times_out_with_exit_code_6() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        done = run_cli("discover", f"127.0.0.1:{port}", "--timeout", "0.5")
        assert time.monotonic() - started < 20
    assert done.returncode == 6
    assert len(done.stderr.splitlines()) == 1 and "0.5 s" in done.stderr
