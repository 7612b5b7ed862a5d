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


def make_backends(
    kind: str, portal: Portal, state_dir: Path
) -> tuple[TargetBackend, TargetBackend | None]:
    """The group backend serving ``portal`` and, for tgt, a member backend behind it.

    Like a real group, the group portal answers SendTargets for every volume and
    redirects each login to the member that holds the data (RFC 7143 §11.13.5,
    status 0x0101); with tgt the member is a second ``tgtd`` on a free port of the
    same host.
    """
    if kind == "tgt":
        group: TargetBackend = TgtBackend.start(
            portal.host, portal.port, log_path=state_dir / "tgtd-group.log"
        )
        try:
            member: TargetBackend = TgtBackend.start(
                portal.host, None, log_path=state_dir / "tgtd-member.log"
            )
        except BaseException:
            group.close()
            raise
        return group, member
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
        group, member = make_backends(args.target_backend, Portal(ihost, iport), state)
        dataplane = DataPlane(group, state / "luns", member=member)
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
            if dataplane.member is not None:
                dataplane.member.close()


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
