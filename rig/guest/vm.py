"""Boot the kernel guest under QEMU TCG and talk to it: console markers, SSH, agent.

One :class:`GuestVM` is one ``qemu-system-x86_64`` process.  The host reaches the
guest only through user-mode networking forwards bound to 127.0.0.1 (``restrict=on``
also keeps the guest from reaching anything else):

- ``iscsi``: the guest's LIO portal (guest port 3260);
- ``ssh``: the guest's OpenSSH server (guest port 22), root with the build's key;
- ``agent``: :mod:`rig.guest.agent`, the line-JSON LIO agent (guest port 7000).

SendTargets answers carry the guest's own address, 10.0.2.15, which the host cannot
reach: connect to the forwarded portal directly.

Two directories are shared over virtio-9p: the project tree (read-only, mounted at
``/opt/eqliscsi``, so the guest runs the current code without a rebuild) and a
scratch directory (``/srv/share``) for backing files that both sides see.

Readiness is a console marker with a hard timeout; :meth:`GuestVM.close` stops QEMU
and reaps it, and QEMU also dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from eqliscsi.errors import RigError
from rig.guest.build import GuestImage

__all__ = [
    "GUEST_SHARE",
    "READY_MARKER",
    "GuestBootError",
    "GuestPorts",
    "GuestVM",
    "free_port",
]

READY_MARKER = "EQLISCSI-GUEST-READY"
FAIL_MARKER = "EQLISCSI-FAIL"
GUEST_SHARE = Path("/srv/share")
GUEST_AGENT_PORT = 7000
_REPO = Path(__file__).resolve().parents[2]


class GuestBootError(RigError):
    reference = "guest-boot-failed"


class _PortTaken(Exception):
    """QEMU could not bind a forward (internal: start() retries with new ports)."""


class GuestAgentError(RigError):
    reference = "guest-agent-failed"


@dataclass(frozen=True, slots=True)
class GuestPorts:
    iscsi: int
    ssh: int
    agent: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (QEMU binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: a crashed pytest must not leave QEMU spinning a core.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


class GuestVM:
    """A running guest.  Use as a context manager, or call :meth:`start`/:meth:`close`."""

    def __init__(
        self,
        image: GuestImage,
        *,
        share_dir: Path,
        workdir: Path | None = None,
        memory_mb: int = 1024,
        boot_timeout: float = 240.0,
        source_dir: Path = _REPO,
    ) -> None:
        self.image = image
        self.share_dir = share_dir.resolve()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="eqliscsi-guest-"))
        self.memory_mb = memory_mb
        self.boot_timeout = boot_timeout
        self.source_dir = source_dir
        self.console_log = self.workdir / "console.log"
        self.ports = GuestPorts(iscsi=free_port(), ssh=free_port(), agent=free_port())
        self._proc: subprocess.Popen[bytes] | None = None
        self._agent: socket.socket | None = None
        self._agent_file: Any = None
        self.boot_seconds: float | None = None

    # -- lifecycle ----------------------------------------------------------

    def argv(self) -> list[str]:
        p = self.ports
        fwd = ",".join(
            f"hostfwd=tcp:127.0.0.1:{host}-:{guest}"
            for host, guest in ((p.iscsi, 3260), (p.ssh, 22), (p.agent, GUEST_AGENT_PORT))
        )
        return [
            "qemu-system-x86_64",
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            # TCG: this host's /dev/kvm cannot run stock kernels (environment.md).
            # One vCPU: a second one does not help on a 2-core host.
            "-accel",
            "tcg,thread=multi,tb-size=128",
            "-m",
            str(self.memory_mb),
            "-smp",
            "1",
            "-no-reboot",
            "-kernel",
            str(self.image.vmlinux if self.image.vmlinux.is_file() else self.image.vmlinuz),
            "-initrd",
            str(self.image.initrd),
            "-append",
            f"console=ttyS0 loglevel=4 panic=-1 eqliscsi.agent_port={GUEST_AGENT_PORT}",
            "-drive",
            f"file={self.image.rootfs},if=virtio,format=raw,snapshot=on,cache=unsafe",
            "-virtfs",
            f"local,path={self.source_dir},mount_tag=eqlsrc,security_model=none,readonly=on",
            "-virtfs",
            f"local,path={self.share_dir},mount_tag=eqlshare,security_model=none",
            "-netdev",
            f"user,id=n0,restrict=on,{fwd}",
            # romfile=: no iPXE option ROM, the guest never boots from the network.
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
            "-serial",
            f"file:{self.console_log}",
            "-monitor",
            "none",
        ]

    def start(self) -> GuestVM:
        self.share_dir.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # free_port() cannot reserve a port: another process may take it before
        # QEMU binds it.  QEMU then exits at once; pick new ports and try again.
        for attempt in range(3):
            try:
                return self._start_once()
            except _PortTaken:
                if attempt == 2:
                    raise GuestBootError(
                        "QEMU could not bind its 127.0.0.1 forwards three times; "
                        "find what is taking ports on loopback and try again."
                    ) from None
                self.ports = GuestPorts(iscsi=free_port(), ssh=free_port(), agent=free_port())
        raise AssertionError("unreachable")

    def _start_once(self) -> GuestVM:
        self.console_log.write_bytes(b"")
        self._write_known_hosts()
        t0 = time.monotonic()
        with (self.workdir / "qemu.stderr").open("wb") as err:
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        try:
            self._wait_ready(t0)
            self._connect_agent(deadline=t0 + self.boot_timeout)
        except BaseException:
            self.close()
            raise
        self.boot_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self._proc is not None
        deadline = t0 + self.boot_timeout
        while time.monotonic() < deadline:
            text = self.console_log.read_text(errors="replace")
            if FAIL_MARKER in text:
                line = next(ln for ln in text.splitlines() if FAIL_MARKER in ln)
                raise GuestBootError(
                    f"The guest reported '{line.strip()}' while booting; "
                    f"read {self.console_log} for the cause."
                )
            if READY_MARKER in text:
                return
            if self._proc.poll() is not None:
                err = (self.workdir / "qemu.stderr").read_text(errors="replace").strip()
                if "host forwarding rule" in err:
                    raise _PortTaken(err)
                raise GuestBootError(
                    f"QEMU exited with status {self._proc.returncode} before the guest was "
                    f"ready ({err.splitlines()[-1] if err else 'no message'}); "
                    f"read {self.console_log}."
                )
            time.sleep(0.2)
        raise GuestBootError(
            f"The guest was not ready within {self.boot_timeout:.0f} s; "
            f"read {self.console_log} to see where the boot stopped."
        )

    def close(self) -> None:
        self._stop_ssh_master()
        if self._agent is not None:
            with contextlib.suppress(OSError):
                self._agent.close()
            self._agent = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # The disk is snapshot=on: nothing to flush, so no orderly shutdown.
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> GuestVM:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- SSH ----------------------------------------------------------------

    def _write_known_hosts(self) -> None:
        key = self.image.ssh_host_key_pub.read_text().split()
        (self.workdir / "known_hosts").write_text(
            f"[127.0.0.1]:{self.ports.ssh} {key[0]} {key[1]}\n"
        )

    def _stop_ssh_master(self) -> None:
        if not (self.workdir / "ssh-control").exists():
            return
        argv = self.ssh_argv(["true"])
        i = argv.index("root@127.0.0.1")
        # "-O exit" asks the ControlPersist master (a daemon we started) to quit.
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [*argv[:i], "-O", "exit", argv[i]], capture_output=True, timeout=10, check=False
            )

    def write_ssh_config(self, alias: str = "eqlguest") -> Path:
        """An OpenSSH client config naming the guest ``alias``, for code that runs
        ``ssh -F <file> <alias> ...`` itself (the TM driver's steps on a host)."""
        if not alias.replace("-", "").isalnum():
            raise GuestAgentError(f"SSH host alias {alias!r} must be letters, digits and '-'.")
        path = self.workdir / f"ssh_config.{alias}"
        path.write_text(
            f"Host {alias}\n"
            "  HostName 127.0.0.1\n"
            f"  Port {self.ports.ssh}\n"
            "  User root\n"
            f"  IdentityFile {self.image.ssh_key}\n"
            "  IdentitiesOnly yes\n"
            "  BatchMode yes\n"
            "  StrictHostKeyChecking yes\n"
            f"  UserKnownHostsFile {self.workdir / 'known_hosts'}\n"
            "  LogLevel ERROR\n"
        )
        return path

    def install_file(self, guest_path: str, content: str, mode: int = 0o644) -> None:
        """Write ``content`` to ``guest_path`` in the guest (e.g. a udev rule), through
        SSH's stdin, so secrets in it never reach an argv."""
        if not guest_path.startswith("/"):
            raise GuestAgentError(f"Guest path {guest_path!r} must be absolute.")
        q = shlex.quote(guest_path)
        self.ssh(
            ["sh", "-euc", f'mkdir -p "$(dirname {q})"; cat > {q}; chmod {mode:o} {q}'],
            input=content,
        )

    def ssh_argv(self, command: Sequence[str]) -> list[str]:
        """OpenSSH argv running ``command`` (quoted word by word) as root in the guest."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.image.ssh_key),
            "-p",
            str(self.ports.ssh),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.workdir / 'known_hosts'}",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "LogLevel=ERROR",
            # One SSH connection for the whole session: under TCG every key
            # exchange costs the guest a second or more of emulated crypto.
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.workdir / 'ssh-control'}",
            "-o",
            "ControlPersist=600",
            "root@127.0.0.1",
            "--",
            shlex.join(command),
        ]

    def ssh(
        self,
        command: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 60.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the guest; pass secrets through ``input``, never argv."""
        proc = subprocess.run(
            self.ssh_argv(command),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise GuestAgentError(
                f"'{command[0]}' in the guest exited with status {proc.returncode} "
                f"({proc.stderr.strip()[-300:]}); run it by hand over SSH to see why."
            )
        return proc

    # -- agent --------------------------------------------------------------

    def _connect_agent(self, deadline: float) -> None:
        # The forward accepts as soon as QEMU runs; the agent answers only when up.
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection(("127.0.0.1", self.ports.agent), timeout=30)
                self._agent, self._agent_file = sock, sock.makefile("rb")
                self.agent("ping")
                return
            except (OSError, GuestAgentError) as exc:
                last = exc
                if self._agent is not None:
                    self._agent.close()
                self._agent = None
                time.sleep(0.5)
        raise GuestBootError(
            f"The guest agent did not answer on 127.0.0.1:{self.ports.agent} ({last}); "
            f"read {self.console_log}."
        )

    def agent(self, op: str, **fields: object) -> Any:
        """Send one request to the in-guest agent and return its result."""
        if self._agent is None:
            raise GuestAgentError("The guest agent is not connected; start the guest first.")
        self._agent.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        line = self._agent_file.readline()
        if not line:
            raise GuestAgentError(
                "The guest agent closed the connection; read the guest console log."
            )
        answer = json.loads(line)
        if not answer.get("ok"):
            raise GuestAgentError(
                f"The guest agent refused {op}: {answer.get('error', 'no reason given')}"
            )
        return answer.get("result")

    def guest_path(self, host_path: Path) -> Path:
        """Where a file in the shared directory appears inside the guest."""
        try:
            rel = host_path.resolve().relative_to(self.share_dir)
        except ValueError:
            raise GuestAgentError(
                f"{host_path} is outside the guest's shared directory {self.share_dir}; "
                "create backing files there."
            ) from None
        return GUEST_SHARE / rel
