"""tgt as the fake array's data plane: INQUIRY identity and CHAP accounts without argv.

Judged by libiscsi (``iscsi-inq``) and by reading every process's ``/proc/<pid>/cmdline``
while the rig configures CHAP, as another local user could.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.secret import Secret
from rig.need import need_executable
from rig.targets.base import EQUALLOGIC_IDENTITY, ChapAccount, ScsiIdentity
from rig.targets.tgt import TgtBackend, TgtError

pytestmark = [pytest.mark.tgt, pytest.mark.judge]

IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123456789-fidelity"
INITIATOR = "iqn.2020-01.test.tgt-fidelity:judge"


@pytest.fixture
def tgt(tmp_path: Path) -> Iterator[TgtBackend]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    with TgtBackend.start(log_path=tmp_path / "tgtd.log") as backend:
        yield backend


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(4 << 20)
    return path


def _inq(tgt: TgtBackend, user: str = "", secret: str = "") -> subprocess.CompletedProcess[str]:
    exe = need_executable("iscsi-inq", "libiscsi-bin")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if user:  # through libiscsi's environment, never argv
        env |= {"LIBISCSI_CHAP_USERNAME": user, "LIBISCSI_CHAP_PASSWORD": secret}
    return subprocess.run(
        [exe, "-i", INITIATOR, f"iscsi://{tgt.portal}/{IQN}/{tgt.lun_of(IQN)}"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def _ident(stdout: str) -> tuple[str, str]:
    fields = dict(line.split(":", 1) for line in stdout.splitlines() if ":" in line)
    return fields["Vendor"].rstrip(), fields["Product"].rstrip()


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (EQUALLOGIC_IDENTITY, ("EQLOGIC", "100E-00")),
        (ScsiIdentity("ACME", "Disk 9000"), ("ACME", "Disk 9000")),
        (None, ("IET", "VIRTUAL-DISK")),  # tgt's own default, unchanged without an identity
    ],
    ids=["equallogic", "other", "tgt-default"],
)
def test_inquiry_identity(
    tgt: TgtBackend, disk: Path, identity: ScsiIdentity | None, expected: tuple[str, str]
) -> None:
    tgt.create_target(IQN, disk, identity)
    done = _inq(tgt)
    assert done.returncode == 0, done.stderr
    assert _ident(done.stdout) == expected


@pytest.mark.parametrize(
    "identity",
    [ScsiIdentity("EQLOGIC,X", "p"), ScsiIdentity("TOOLONGVENDOR", "p"), ScsiIdentity("V", "")],
    ids=["comma", "too-long", "empty"],
)
def test_inquiry_identity_rejected(tgt: TgtBackend, disk: Path, identity: ScsiIdentity) -> None:
    with pytest.raises(TgtError, match="INQUIRY identity"):
        tgt.create_target(IQN, disk, identity)
    assert tgt.targets() == []


def _watch_cmdlines(stop: threading.Event, seen: list[bytes]) -> None:
    """Collect every other process's argv until ``stop`` (bounded by the caller's timeout)."""
    me = str(os.getpid())
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                continue  # exited meanwhile
            if raw:
                seen.append(raw)


def _logging_tgtadm(bin_dir: Path, log: Path) -> None:
    """Put a ``tgtadm`` first on PATH that appends its argv to ``log`` and runs the real one.

    Polling ``/proc`` can miss a tgtadm that lives a millisecond; this wrapper cannot, so
    every argv the rig gives tgtadm is judged, not just the ones a poll happened to catch.
    """
    real = shutil.which("tgtadm") or shutil.which("tgtadm", path="/usr/sbin:/sbin")
    assert real is not None
    wrapper = bin_dir / "tgtadm"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)


def test_chap_secret_never_on_any_argv(
    tgt: TgtBackend, disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = [f"fidelity-secret-{n:02d}-xyz" for n in range(8)]
    tgt.create_target(IQN, disk)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "tgtadm-argv.log"
    _logging_tgtadm(bin_dir, argv_log)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    seen: list[bytes] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_cmdlines, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        for n, secret in enumerate(secrets):
            account = ChapAccount(f"user{n}", Secret(secret.encode()))
            tgt.set_chap(IQN, account, None)
            tgt.set_discovery_chap(account, None)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    # Every tgtadm run went through the wrapper, binds and unbinds included...
    runs = argv_log.read_text().splitlines()
    assert any("--op bind" in run for run in runs), runs
    assert any("--op unbind" in run for run in runs), runs
    # ...and the /proc poll was looking: it saw the long-lived tgtd itself.
    assert any(b"tgtd" in raw for raw in seen)
    # No tgtadm argv, and no argv any poll caught, ever carried a secret.
    assert [run for run in runs for s in secrets if s in run] == []
    assert [raw for raw in seen for s in secrets if s.encode() in raw] == []


def test_chap_account_set_over_the_socket_authenticates(tgt: TgtBackend, disk: Path) -> None:
    tgt.create_target(IQN, disk, EQUALLOGIC_IDENTITY)
    tgt.set_initiators(IQN, [INITIATOR])
    tgt.set_chap(IQN, ChapAccount("judge", Secret(b"judge-chap-secret-1")), None)
    assert "judge" in tgt._adm("--mode", "account", "--op", "show")
    ok = _inq(tgt, "judge", "judge-chap-secret-1")
    assert ok.returncode == 0, ok.stderr
    assert _ident(ok.stdout) == ("EQLOGIC", "100E-00")
    wrong = _inq(tgt, "judge", "not-the-secret-9")
    assert wrong.returncode != 0 and "Authentication failure" in wrong.stderr
    assert _inq(tgt).returncode != 0  # no CHAP at all: refused


def test_chap_secret_tgt_cannot_store_is_refused(tgt: TgtBackend, disk: Path) -> None:
    tgt.create_target(IQN, disk)
    with pytest.raises(TgtError, match="contains ','") as info:
        tgt.set_chap(IQN, ChapAccount("comma", Secret(b"has,a-comma-123")), None)
    assert "has,a-comma" not in str(info.value)
