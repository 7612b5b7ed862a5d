"""``python -m rig.fake_eql``: run one fake EqualLogic group until SIGTERM/SIGINT.

It prints exactly one line, ``ready <host>:<port>``, once it accepts SSH
connections; tests wait for that line.  The password comes from a file, never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from eqliscsi.errors import EqliscsiError, RigError
from eqliscsi.secret import Secret
from rig.fake_eql.dataplane import DataPlane
from rig.fake_eql.server import FakeEql
from rig.targets.base import Portal, TargetBackend
from rig.targets.tgt import TgtBackend


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


# The target backends make_backends can serve a data plane with (the san container's
# entrypoint reads this before it picks LIO).
BACKENDS = ("tgt",)


def make_backends(
    kind: str, portal: Portal, state_dir: Path, member_port: int | None = None
) -> tuple[TargetBackend, TargetBackend | None]:
    """The group backend serving ``portal`` and, for tgt, a member backend behind it.

    Like a real group, the group portal answers SendTargets for every volume and
    redirects each login to the member that holds the data (RFC 7143 §11.13.5,
    status 0x0101); with tgt the member is a second ``tgtd`` on a free port of the
    same host (``member_port``, or a free one).
    """
    if kind == "tgt":
        group: TargetBackend = TgtBackend.start(
            portal.host, portal.port, log_path=state_dir / "tgtd-group.log"
        )
        try:
            member: TargetBackend = TgtBackend.start(
                portal.host, member_port, log_path=state_dir / "tgtd-member.log"
            )
        except BaseException:
            group.close()
            raise
        return group, member
    if kind == "lio":
        # LIO has no login redirect, so no member: the group portal serves the LUNs
        # itself.  Only inside the kernel guest (configfs + rtslib-fb).
        from rig.targets.lio_local import LocalLioBackend  # noqa: PLC0415 - guest-only

        return LocalLioBackend(portal), None
    raise RigError(f"Target backend {kind!r} is not available here; use --target-backend tgt.")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rig.fake_eql", description=__doc__)
    p.add_argument("--state", required=True, type=Path, help="state directory")
    p.add_argument("--listen", default="127.0.0.1:0", help="SSH HOST:PORT (port 0: any)")
    p.add_argument("--target-backend", choices=["tgt", "lio"], default="tgt")
    p.add_argument("--group-name", required=True, help="group name, shown in the prompt")
    p.add_argument("--account", default="grpadmin", help="CLI account name")
    p.add_argument("--password-file", required=True, type=Path, help="file with the password")
    p.add_argument(
        "--iscsi-portal",
        default=None,
        help="group iSCSI portal HOST:PORT served by the target backend; "
        "without it the fake has no data plane (CLI only)",
    )
    # Behind NAT (the Docker rig) the member's listening address is not what initiators
    # reach, and initiators on different networks reach it under different addresses.
    p.add_argument("--member-port", type=int, default=None, help="member tgtd port (default: free)")
    p.add_argument(
        "--redirect-to",
        default=None,
        help="HOST:PORT the group portal redirects logins to (default: the member's portal)",
    )
    p.add_argument(
        "--extra-portal",
        action="append",
        default=[],
        metavar="LISTEN_PORT=HOST:PORT",
        help="another group portal on the portal host, redirecting logins to HOST:PORT",
    )
    p.add_argument(
        "--group-ip", default=None, help="Group-Ipaddress shown by the CLI (default: portal host)"
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    password = Secret.from_file(args.password_file)
    host, port = _host_port(args.listen, 0)
    state: Path = args.state
    dataplane = None
    group_ip = host
    if args.iscsi_portal:
        ihost, iport = _host_port(args.iscsi_portal, 3260)
        group_ip = ihost
        group, member = make_backends(
            args.target_backend, Portal(ihost, iport), state, args.member_port
        )
        more: list[tuple[TargetBackend, Portal]] = []
        try:
            redirect = Portal(*_host_port(args.redirect_to, 3260)) if args.redirect_to else None
            for n, spec in enumerate(args.extra_portal):
                listen, sep, to = spec.partition("=")
                if not sep or not listen.isdigit():
                    raise RigError(f"--extra-portal {spec!r} is not LISTEN_PORT=HOST:PORT; fix it.")
                extra = TgtBackend.start(
                    ihost, int(listen), log_path=state / f"tgtd-group{n + 1}.log"
                )
                more.append((extra, Portal(*_host_port(to, 3260))))
            dataplane = DataPlane(
                group, state / "luns", member=member, redirect=redirect, more_groups=more
            )
        except BaseException:
            for backend in (group, member, *(g for g, _ in more)):
                if backend is not None:
                    backend.close()
            raise
    if args.group_ip:
        group_ip = args.group_ip
    try:
        fake = FakeEql(
            state,
            group_name=args.group_name,
            account=args.account,
            password=password,
            dataplane=dataplane,
            group_ip=group_ip,
        )
        bound_host, bound_port = await fake.start(host, port)
        print(f"ready {bound_host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await fake.close()
    finally:
        if dataplane is not None:
            _close_dataplane(dataplane)
    return 0


def _close_dataplane(dataplane: DataPlane) -> None:
    try:
        dataplane.close()
    finally:
        try:
            dataplane.backend.close()
        finally:
            try:
                if dataplane.member is not None:
                    dataplane.member.close()
            finally:
                for extra, _ in dataplane.more_groups:
                    extra.close()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.state.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return asyncio.run(_serve(args))
    except EqliscsiError as e:
        print(f"fake-eql: {e}", file=sys.stderr)
        return int(e.exit_code)


if __name__ == "__main__":
    sys.exit(main())
