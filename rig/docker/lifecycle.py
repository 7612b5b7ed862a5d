"""The container topology as a :class:`rig.lifecycle.LifecycleRig`.

* The front-end is the frontend container: its installed remotes
  (``/var/lib/one/remotes``, copied in by the topology as ``eqliscsi install`` would),
  the oned simulator of the installed package, run as oneadmin through
  :mod:`rig.docker.frontend_oned`.  Its ``eqliscsi.conf`` names the group by its
  network name (CLI ``san:22``, ``known_hosts`` line ``san``) and the group portal by
  the san's private address, the address the group reports and the hosts reach.
* ``h1``/``h2`` are the host1/host2 containers: oneadmin's ssh config in the frontend
  (``EQLISCSI_SSH_CONFIG``) names them so, checking each host's real key; the driver
  logs in there with ``sudo -n`` through the hosts' sudoers, as on an OpenNebula host.
* The suite judges from the hosts themselves (``docker exec`` as root: the stand-in's
  ``iscsiadm -m session``, ``readlink``, ``dd`` through ``/dev/iscsi/<volume>``) and
  from the group's saved model in the san container.

The group password and the CHAP secret reach the frontend as 0600 files copied with
``put_archive``; they are never in a command line or an environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docker.models.containers import Container

from eqliscsi.san.ops import SanOps
from eqliscsi.san.session import CliSession, with_session
from eqliscsi.secret import Secret
from rig.docker.errors import FrontendCallError
from rig.docker.frontend_oned import encode_request, vm_to_json
from rig.docker.topology import FRONTEND_REMOTES, ONEADMIN_HOME, ONEADMIN_UID, DockerRig, Topology
from rig.hosts.rig import NODE_AUTH_HELPER
from rig.lifecycle import HOSTS, Frontend, HostResult
from rig.oned import PROFILES, DatastoreSpec, DsOutcome, ImageSpec, OnedProfile, TmOutcome, VmSpec
from rig.oned.documents import driver_action_xml

__all__ = ["CHAP_USER", "ContainerFrontend", "DockerLifecycle", "access_pattern"]

CHAP_USER = "rig-oneadmin"
FILES = f"{ONEADMIN_HOME}/eqliscsi"  # the rig's front-end files (0700, oneadmin)
SIMS = f"{ONEADMIN_HOME}/sim"
CONTAINERS = {"h1": "host1", "h2": "host2"}


class ContainerFrontend:
    """One :class:`rig.oned.OnedSimulator` tree inside the frontend container."""

    def __init__(self, rig: DockerLifecycle, profile: str, root: str, env: dict[str, str]) -> None:
        self.rig = rig
        self._profile = PROFILES[profile]
        self.root = root
        self.env = env

    @property
    def profile(self) -> OnedProfile:
        return self._profile

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        request = {
            "op": op,
            "profile": self._profile.name,
            "root": self.root,
            "env": self.env,
            **fields,
        }
        return self.rig.frontend_call(request)

    def ds_document(self, image: ImageSpec | None, datastore: DatastoreSpec | None = None) -> str:
        # A pure function of the version: built here, sent as the request's document.
        return driver_action_xml(self._profile.xml_version, image, datastore or DatastoreSpec())

    def run_ds(self, action: str, document: str | bytes, object_id: int) -> DsOutcome:
        text = document.decode() if isinstance(document, bytes) else document
        d = self._call("run_ds", action=action, document=text, object_id=object_id)
        return DsOutcome(**{**d, "logs": tuple(d["logs"]), "argv": tuple(d["argv"])})

    def run_tm(self, action: str, args: Sequence[str], *, sys_tm: str | None = None) -> TmOutcome:
        d = self._call("run_tm", action=action, args=list(args), sys_tm=sys_tm)
        return _tm_outcome(d)

    def run_migrate(
        self,
        action: str,
        *,
        src: str,
        dst: str,
        vm_dir: str,
        vm: VmSpec,
        ds_id: int = 0,
        sys_tm: str = "shared",
    ) -> TmOutcome:
        d = self._call(
            "run_migrate",
            action=action,
            src=src,
            dst=dst,
            vm_dir=vm_dir,
            vm=vm_to_json(vm),
            ds_id=ds_id,
            sys_tm=sys_tm,
        )
        return _tm_outcome(d)

    def register_vm(self, vm: VmSpec) -> None:
        self._call("register_vm", vm=vm_to_json(vm))

    def driver_log(self) -> str:
        return str(self._call("log")["text"])


def _tm_outcome(d: dict[str, Any]) -> TmOutcome:
    return TmOutcome(**{**d, "logs": tuple(d["logs"]), "argv": tuple(d["argv"])})


def _exec(container: Container, argv: list[str], *, user: str = "root") -> tuple[int, bytes, bytes]:
    """``argv`` in ``container``: exit status, stdout and stderr apart."""
    result = container.exec_run(argv, user=user, demux=True)
    out: bytes | None = None
    err: bytes | None = None
    if isinstance(result.output, tuple):
        out, err = result.output
    return int(result.exit_code or 0), out or b"", err or b""


def access_pattern(subnet: str) -> str:
    """EqualLogic's wildcard form of a network, ``172.18.*.*`` for ``172.18.0.0/16``.

    Octets a prefix does not cover whole become ``*``, so the pattern admits the whole
    network (a /20 gives ``a.b.*.*``).
    """
    net = ipaddress.IPv4Network(subnet, strict=False)
    kept = net.prefixlen // 8
    octets = str(net.network_address).split(".")
    return ".".join(octets[:kept] + ["*"] * (4 - kept))


class DockerLifecycle:
    """See the module docstring; :meth:`setup` once, then use it like the embedded rig."""

    name = "docker"

    def __init__(self, topology: Topology, rig: DockerRig, directory: Path) -> None:
        self.topology = topology
        self.docker_rig = rig
        self.directory = directory
        self.chap_file = directory / "chap_secret"  # 0600, the host-side copy
        self._sims: dict[str, ContainerFrontend] = {}

    # ------------------------------------------------------------------ setup
    def setup(self) -> DockerLifecycle:
        """The CHAP account on the group; password, secret, known_hosts and ssh config
        in the frontend.  Idempotent."""
        if not self.chap_file.exists():
            self.chap_file.touch(mode=0o600)
            self.chap_file.write_text(secrets.token_hex(8) + "\n")
        asyncio.run(self._make_chap_user())
        fe = self.topology["frontend"]
        status, out = fe.exec(
            ["install", "-d", "-o", "oneadmin", "-g", "oneadmin", "-m", "0700", FILES, SIMS]
        )
        if status != 0:
            raise FrontendCallError(
                f"Could not make {FILES} in the frontend ({out.strip()}); check the frontend image."
            )
        san_key = self.docker_rig.known_hosts.read_text().splitlines()[1]  # "san <alg> <key>"
        ssh_config = "".join(
            f"Host {alias}\n  HostName {name}\n  HostKeyAlias {name}\n"
            for alias, name in CONTAINERS.items()
        ) + (
            # -F replaces the system-wide config, so everything oneadmin's ssh needs is here.
            f"Host *\n  User oneadmin\n  IdentityFile {ONEADMIN_HOME}/.ssh/id_ed25519\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {ONEADMIN_HOME}/.ssh/known_hosts\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n"
            "  LogLevel ERROR\n"
        )
        for name, content in (
            ("san-password", self.docker_rig.password_file.read_bytes()),
            ("chap_secret", self.chap_file.read_bytes()),
            ("known_hosts", f"{san_key}\n".encode()),
            ("ssh_config", ssh_config.encode()),
        ):
            fe.put_file(f"{FILES}/{name}", content, owner=ONEADMIN_UID)
        return self

    async def _make_chap_user(self) -> None:
        secret = Secret.from_file(self.chap_file)

        async def go(session: CliSession) -> None:
            await SanOps(session, 0).ensure_chap_user(CHAP_USER, secret)

        await with_session(self.docker_rig.san_endpoint(), go)

    def san_address(self) -> str:
        """The san's address on the private network (the group IP the hosts log in to)."""
        san = self.topology["san"].container
        san.reload()
        networks = san.attrs["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])

    def subnet(self) -> str:
        network = self.topology.network
        assert network is not None
        network.reload()
        return str(network.attrs["IPAM"]["Config"][0]["Subnet"])

    def conf_text(self) -> str:
        values = {
            "EQL_HOST": "san",
            "EQL_SSH_PORT": "22",
            "EQL_USER": self.docker_rig.account,
            "EQL_PASS_FILE": f"{FILES}/san-password",
            "EQL_KNOWN_HOSTS": f"{FILES}/known_hosts",
            "EQL_PORTAL": f"{self.san_address()}:3260",
            "EQL_POOL": "default",
            # The private network, and CHAP on every login (hosts and front-end).
            "EQL_SECURITY_ACCESS": (
                f"'ipaddress {access_pattern(self.subnet())} username {CHAP_USER} authmethod chap'"
            ),
            "EQL_CHAP_USER": CHAP_USER,
            "EQL_CHAP_SECRET_FILE": f"{FILES}/chap_secret",
            # The hosts' root-owned copy that their sudoers names (rig/docker/host).
            "EQL_NODE_AUTH_HELPER": NODE_AUTH_HELPER,
            "EQL_WAIT_TIME": "20",
            "EQL_MAX_SESSIONS": "4",
            "NO_ISCSI": "fe",
        }
        return "".join(f"{k}={v}\n" for k, v in values.items())

    def frontend_call(self, request: dict[str, Any]) -> dict[str, Any]:
        status, out, err = _exec(
            self.topology["frontend"].container,
            ["python", "-m", "rig.docker.frontend_oned", encode_request(request)],
            user="oneadmin",
        )
        text = out.decode(errors="replace")
        if status != 0 or not text.strip():
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            raise FrontendCallError(
                f"The frontend's oned simulator failed on {request['op']} "
                f"(status {status}: {' | '.join(tail)}); read the frontend's log."
            )
        answer: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
        return answer

    # ------------------------------------------------------------------ LifecycleRig
    def simulator(
        self, profile: str, *, name: str | None = None, as_oneadmin: bool = True
    ) -> Frontend:
        # The hosts' sshd admits oneadmin only (as OpenNebula's hosts): as_oneadmin is
        # what this rig always does, whatever is asked.
        key = name or profile
        if key in self._sims:
            return self._sims[key]
        root = f"{SIMS}/{key}"
        env = {
            "EQLISCSI_SSH_CONFIG": f"{FILES}/ssh_config",
            "EQLISCSI_LOCK_DIR": f"{root}/locks",
        }
        sim = ContainerFrontend(self, profile, root, env)
        sim._call("create", remotes=FRONTEND_REMOTES, conf=self.conf_text())
        self._sims[key] = sim
        return sim

    def put_vm(self, sim: Frontend, vm: VmSpec) -> None:
        sim.register_vm(vm)

    def run(self, host: str, command: str) -> HostResult:
        if host not in HOSTS:
            raise ValueError(f"no host {host!r} in this rig")
        return HostResult(*_exec(self.topology[CONTAINERS[host]].container, ["sh", "-c", command]))

    def volumes(self) -> dict[str, dict[str, Any]]:
        status, text = self.topology["san"].exec(["cat", f"{self.docker_rig.state_dir}/san.json"])
        if status != 0:
            raise FrontendCallError(
                f"Could not read the group's model ({text.strip()}); check the san container."
            )
        data = json.loads(text)
        return {v["name"]: v for v in data["volumes"]}

    def chap_secret(self) -> Secret:
        return Secret.from_file(self.chap_file)
