"""Engine discovery and readiness probes against local stand-ins (no Docker needed)."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.docker.engine import ensure_engine, probe
from rig.docker.errors import DockerUnavailableError
from rig.docker.topology import CAPABILITIES, _ssh_banner, _tar, privileged_options


def test_probe_of_a_missing_socket_is_none(tmp_path: Path) -> None:
    assert probe(f"unix://{tmp_path}/docker.sock", timeout=1) is None


def test_unanswered_docker_host_is_reported_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(DockerUnavailableError, match="DOCKER_HOST=") as info:
        ensure_engine()
    assert info.value.reference == "docker-unavailable"


def test_start_false_never_starts_dockerd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(DockerUnavailableError, match="start dockerd"):
        ensure_engine(start=False)


@pytest.fixture
def one_shot_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """Accepts one connection on 127.0.0.1, sends ``request.param`` and closes."""
    payload: bytes = request.param
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[:2]
    server.close()
    thread.join(timeout=10)


@pytest.mark.parametrize(
    ("one_shot_server", "expected"),
    [
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "SSH-2.0-OpenSSH_9.2p1 Debian-2"),
        # What the engine's port proxy does before sshd listens: accept, then close.
        (b"", None),
        (b"HTTP/1.1 400 Bad Request\r\n", None),
    ],
    ids=["openssh", "proxy-closes", "not-ssh"],
    indirect=["one_shot_server"],
)
def test_ssh_banner(one_shot_server: tuple[str, int], expected: str | None) -> None:
    assert _ssh_banner(one_shot_server, timeout=5) == expected


def test_nothing_listening_is_not_ready() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        address = s.getsockname()[:2]
    assert _ssh_banner(address, timeout=1) is None


def test_tar_sets_owner_and_mode() -> None:
    data = _tar([("id_ed25519", b"k", 0o600), ("known_hosts", b"h", 0o644)], uid=9869, gid=9869)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: (m.uid, m.gid, m.mode, m.size) for m in tar.getmembers()}
    assert members == {"id_ed25519": (9869, 9869, 0o600, 1), "known_hosts": (9869, 9869, 0o644, 1)}


ALL_CAPS = (1 << len(CAPABILITIES)) - 1
NO_SYS_RESOURCE = ALL_CAPS & ~(1 << 24)  # this machine's VM: CapBnd 000001fffeffffff


def test_capability_table_matches_the_kernel_numbering() -> None:
    assert len(CAPABILITIES) == 41  # 0..CAP_CHECKPOINT_RESTORE (40)
    assert CAPABILITIES[21] == "SYS_ADMIN"
    assert CAPABILITIES[24] == "SYS_RESOURCE"
    assert CAPABILITIES[27] == "MKNOD"
    assert NO_SYS_RESOURCE == 0x1FFFEFFFFFF


@pytest.mark.parametrize(
    ("bounding", "privileged", "missing"),
    [
        (ALL_CAPS, True, set()),
        (NO_SYS_RESOURCE, False, {"SYS_RESOURCE"}),
        (ALL_CAPS & ~(1 << 16), False, {"SYS_MODULE"}),
    ],
    ids=["full-set", "sandbox-without-sys-resource", "no-sys-module"],
)
def test_privileged_options(bounding: int, privileged: bool, missing: set[str]) -> None:
    options = privileged_options(bounding, ["/dev/fuse", "/dev/loop0"])
    if privileged:
        assert options == {"privileged": True}
        return
    # Docker 20.10 knows no capability past AUDIT_READ (37), and refuses unknown names.
    newer = {"PERFMON", "BPF", "CHECKPOINT_RESTORE"}
    assert set(CAPABILITIES) - set(options["cap_add"]) == missing | newer
    assert options["devices"] == ["/dev/fuse:/dev/fuse:rwm", "/dev/loop0:/dev/loop0:rwm"]
    assert "b 7:* rwm" in options["device_cgroup_rules"]  # loop devices made later
    assert "seccomp=unconfined" in options["security_opt"]
