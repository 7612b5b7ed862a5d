"""The embedded rig: a fake EqualLogic group, two namespaced hosts and a front-end dir.

Everything lives under one rig directory and one machine:

* ``hosts/``: :class:`rig.hosts.HostRig` — two hosts (``h1``, ``h2``) in their own
  network/mount namespaces with sshd and the ``iscsiadm`` stand-in, on a private
  bridge ``10.254.S.0/24``;
* ``san/``: ``python -m rig.fake_eql`` — the Group Manager CLI over SSH on
  127.0.0.1 (only the front-end talks to it) and its iSCSI data plane (tgtd) on the
  bridge address, the one address the hosts can reach;
* ``fe/``: the front-end: ``remotes/`` with ``VERSION`` per OpenNebula profile
  (:class:`rig.oned.OnedSimulator`), ``eqliscsi.conf``, the group password and CHAP
  secret files (0600), the VM and datastore documents the simulator's ``onevm`` /
  ``onedatastore`` stand-ins print, and an ssh config naming the hosts;
* ``rig.json``: pids and addresses, so ``down`` works from another process.

``down`` stops the fake group (which stops its tgtds) and tears the hosts down
(processes, loop devices, namespaces, bridge).  No traffic goes anywhere but
127.0.0.1 and the rig's bridge; the extra ssh alias ``h9`` points at an unused
bridge address for "host unreachable" tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eqliscsi.errors import RigError
from eqliscsi.san.ops import SanOps
from eqliscsi.san.session import CliSession, HostKeyPolicy, SanEndpoint, with_session
from eqliscsi.secret import Secret
from rig.hosts import HostRig
from rig.hosts.rig import NODE_AUTH_HELPER
from rig.oned import IMAGE_DS, SYSTEM_DS, OnedSimulator, VmSpec

__all__ = ["EmbeddedRig", "EmbeddedRigError"]

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 60.0
ACCOUNT = "grpadmin"
CHAP_USER = "rig-oneadmin"
GROUP = "rig-group"


class EmbeddedRigError(RigError):
    reference = "rig-embedded-failed"


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedRig:
    """Use as a context manager, or ``up()``/``down()``; ``load(dir)`` from another process."""

    root: Path
    hosts: HostRig | None = None
    san_pid: int = 0
    san_ssh: tuple[str, int] = ("127.0.0.1", 0)
    portal: tuple[str, int] = ("", 0)
    extra_conf: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ paths
    @property
    def fe(self) -> Path:
        return self.root / "fe"

    @property
    def san_state(self) -> Path:
        return self.root / "san"

    @property
    def ssh_config(self) -> Path:
        return self.fe / "ssh_config"

    @property
    def ssh_config_oneadmin(self) -> Path:
        """The hosts reached as oneadmin, who runs iscsiadm through sudo."""
        return self.fe / "ssh_config_oneadmin"

    @property
    def password_file(self) -> Path:
        return self.fe / "eql_password"

    @property
    def chap_file(self) -> Path:
        return self.fe / "chap_secret"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    # ------------------------------------------------------------------ up
    def __enter__(self) -> EmbeddedRig:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        if os.geteuid() != 0:
            raise EmbeddedRigError("The embedded rig needs root (namespaces, loop, tgtd).")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        for d in (self.fe, self.log_dir, self.san_state):
            d.mkdir(parents=True, exist_ok=True)
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> None:
        self.hosts = HostRig(self.root / "hosts", count=2, data_lun=1)
        self._save()
        self.hosts.up()
        self._save()
        gateway = self.hosts.gateway
        self._secret_file(self.password_file, secrets.token_urlsafe(18))
        self._secret_file(self.chap_file, secrets.token_hex(8))
        iport = _free_port(gateway)
        self.portal = (gateway, iport)
        log = open(self.log_dir / "fake_eql.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rig.fake_eql",
                    "--state",
                    str(self.san_state),
                    "--listen",
                    "127.0.0.1:0",
                    "--group-name",
                    GROUP,
                    "--account",
                    ACCOUNT,
                    "--password-file",
                    str(self.password_file),
                    "--target-backend",
                    "tgt",
                    "--iscsi-portal",
                    f"{gateway}:{iport}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        self.san_pid = proc.pid
        self._save()
        assert proc.stdout is not None
        line = self._ready_line(proc)
        host, _, port = line.split()[1].rpartition(":")
        self.san_ssh = (host, int(port))
        proc.stdout.close()
        pub = (self.san_state / "ssh_host_ed25519_key.pub").read_text().split()
        (self.fe / "known_hosts").write_text(f"[{host}]:{port} {pub[0]} {pub[1]}\n")
        self._save()
        self._write_frontend()
        asyncio.run(self._make_chap_user())

    def _ready_line(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            chunk = proc.stdout.read() or b""
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode()
            time.sleep(0.05)
        raise EmbeddedRigError(
            f"The fake group did not report ready within {READY_TIMEOUT_S:.0f} s; see "
            f"{self.log_dir / 'fake_eql.log'}."
        )

    @staticmethod
    def _secret_file(path: Path, value: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")

    def endpoint(self) -> SanEndpoint:
        return SanEndpoint(
            host=self.san_ssh[0],
            port=self.san_ssh[1],
            username=ACCOUNT,
            password=Secret.from_file(self.password_file),
            host_key_policy=HostKeyPolicy.KNOWN_HOSTS,
            known_hosts=str(self.fe / "known_hosts"),
        )

    async def _make_chap_user(self) -> None:
        secret = Secret.from_file(self.chap_file)

        async def go(session: CliSession) -> None:
            await SanOps(session, 0).ensure_chap_user(CHAP_USER, secret)

        await with_session(self.endpoint(), go)

    def conf_text(self, **overrides: str) -> str:
        assert self.hosts is not None
        values = {
            "EQL_HOST": self.san_ssh[0],
            "EQL_SSH_PORT": str(self.san_ssh[1]),
            "EQL_USER": ACCOUNT,
            "EQL_PASS_FILE": str(self.password_file),
            "EQL_KNOWN_HOSTS": str(self.fe / "known_hosts"),
            "EQL_PORTAL": f"{self.portal[0]}:{self.portal[1]}",
            "EQL_POOL": "default",
            # The hosts' bridge, and CHAP on every login (hosts and front-end).
            "EQL_SECURITY_ACCESS": f"'ipaddress 10.254.*.* username {CHAP_USER} authmethod chap'",
            "EQL_CHAP_USER": CHAP_USER,
            "EQL_CHAP_SECRET_FILE": str(self.chap_file),
            "EQL_WAIT_TIME": "10",
            "EQL_MAX_SESSIONS": "4",
            "NO_ISCSI": "fe",
        }
        values.update(self.extra_conf)
        values.update(overrides)
        return "".join(f"{k}={v}\n" for k, v in values.items())

    def _write_frontend(self) -> None:
        assert self.hosts is not None
        (self.fe / "eqliscsi.conf").write_text(self.conf_text())
        unreachable = f"10.254.{self.hosts.subnet}.99"
        self.ssh_config.write_text(
            self.hosts.ssh_config.read_text() + f"Host h9\n  HostName {unreachable}\n  User root\n"
            f"  IdentityFile {self.hosts.client_key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.hosts.workdir / 'known_hosts'}\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 2\n  LogLevel ERROR\n"
        )
        self.ssh_config_oneadmin.write_text(self.hosts.ssh_config_oneadmin.read_text())

    # ------------------------------------------------------------------ use
    def environment(self) -> dict[str, str]:
        return {
            "EQLISCSI_SSH_CONFIG": str(self.ssh_config),
            "EQLISCSI_LOCK_DIR": str(self.fe / "locks"),
        }

    def simulator(
        self,
        profile: str,
        *,
        name: str | None = None,
        conf: str | None = None,
        as_oneadmin: bool = False,
    ) -> OnedSimulator:
        """A front-end remotes tree for ``profile`` (one per profile and name).

        ``as_oneadmin``: the driver reaches the hosts as oneadmin, not root, so every
        iscsiadm and CHAP-helper step goes through ``sudo -n`` and the shipped sudoers
        rule (the helper is the root-owned copy that rule names).
        """
        base = self.fe / "sim" / (name or profile)
        base.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        if as_oneadmin:
            env["EQLISCSI_SSH_CONFIG"] = str(self.ssh_config_oneadmin)
            if conf is None:
                conf = self.conf_text(EQL_NODE_AUTH_HELPER=NODE_AUTH_HELPER)
        sim = OnedSimulator.create(
            profile,
            base,
            conf=conf if conf is not None else (self.fe / "eqliscsi.conf").read_text(),
            extra_env=env,
        )
        # What `onedatastore show -x` answers: the image datastore and the system one.
        sim.register_datastore(IMAGE_DS)
        sim.register_datastore(SYSTEM_DS)
        return sim

    @staticmethod
    def put_vm(sim: OnedSimulator, vm: VmSpec) -> None:
        """What oned would answer to ``onevm show -x`` for this VM."""
        sim.register_vm(vm)

    def ssh(
        self, host: str, command: str, *, stdin: bytes = b"", timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), host, command],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    # ------------------------------------------------------------------ state
    def _save(self) -> None:
        data = {
            "san_pid": self.san_pid,
            "san_ssh": list(self.san_ssh),
            "portal": list(self.portal),
            "hosts_dir": str(self.root / "hosts"),
        }
        (self.root / "rig.json").write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, root: Path) -> EmbeddedRig:
        data = json.loads((root / "rig.json").read_text())
        rig = cls(root)
        rig.san_pid = data["san_pid"]
        rig.san_ssh = (data["san_ssh"][0], int(data["san_ssh"][1]))
        rig.portal = (data["portal"][0], int(data["portal"][1]))
        hosts_dir = Path(data["hosts_dir"])
        if (hosts_dir / "rig.json").exists():
            rig.hosts = HostRig.load(hosts_dir)
        return rig

    def status(self) -> dict[str, object]:
        alive = False
        if self.san_pid:
            try:
                os.kill(self.san_pid, 0)
                alive = True
            except OSError:
                alive = False
        return {
            "root": str(self.root),
            "fake_group": {"pid": self.san_pid, "alive": alive, "ssh": list(self.san_ssh)},
            "portal": list(self.portal),
            "hosts": [
                {"name": h.name, "address": h.address, "netns": h.netns}
                for h in (self.hosts.hosts if self.hosts else [])
            ],
        }

    # ------------------------------------------------------------------ down
    def down(self) -> None:
        """Stop everything the rig started; safe to call twice."""
        if self.san_pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.san_pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(self.san_pid, os.WNOHANG)
                except ChildProcessError:
                    try:
                        os.kill(self.san_pid, 0)
                    except OSError:
                        break
                    done = 0
                if done:
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.san_pid, signal.SIGKILL)
            self.san_pid = 0
        if self.hosts is not None:
            self.hosts.down()
        if self.root.exists():
            self._save()
