"""The native iSCSI client against a real tgtd: the first step of ``python -m rig.demo``.

Run alone with ``python -m rig.demo_iscsi``.  It starts its own
tgtd on 127.0.0.1 (a free port), creates a CHAP-protected target (mutual CHAP)
backed by a sparse file, then, through the library only:

1. discovers the target (``discover``) and checks the listing;
2. probes it with the right credentials (``probe``) and checks the LUN size equals
   the backing file's;
3. checks that a wrong secret is refused (``AuthenticationFailed``) and a wrong
   *target* secret is caught by our side (``MutualAuthFailed``);
4. checks that the session was logged out (tgt lists no session afterwards).

It prints what was verified with timings, exits non-zero if anything failed, and
removes everything it created.  The secrets are random throwaway values made here.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from eqliscsi.errors import EqliscsiError
from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapCredentials,
    MutualAuthFailed,
    Portal,
    discover,
    probe,
)
from eqliscsi.secret import Secret
from rig.targets.base import ChapAccount
from rig.targets.tgt import TgtBackend

__all__ = ["Step", "main", "run_checks"]

IQN = "iqn.2001-05.com.equallogic:0-8a0906-0000demo0-0000000000000001-demo-vol"
SIZE = 10 << 30  # 10 GiB, sparse: no disk space used


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


def _secret(origin: str) -> Secret:
    return Secret(secrets.token_urlsafe(12).encode(), origin=origin)


async def _run(backend: TgtBackend, disk: Path, expected: int, steps: list[Step]) -> None:
    portal = Portal(backend.portal.host, backend.portal.port)
    user, target_user = "demo-initiator", "demo-target"
    secret, target_secret = _secret("demo initiator"), _secret("demo target")
    backend.create_target(IQN, disk)
    backend.set_chap(IQN, ChapAccount(user, secret), ChapAccount(target_user, target_secret))
    good = Auth(ChapCredentials(user, secret), ChapCredentials(target_user, target_secret))

    async def check(name: str, action: Callable[[], Awaitable[str]]) -> None:
        started = time.perf_counter()
        try:
            detail, ok = await action(), True
        except (EqliscsiError, AssertionError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        steps.append(Step(name, ok, detail, time.perf_counter() - started))

    async def discovered() -> str:
        targets = await discover(portal)
        names = [t.name for t in targets]
        assert names == [IQN], f"listing was {names}"
        return f"{IQN} at {', '.join(str(p) for p in targets[0].portals)}"

    async def probed() -> str:
        result = await probe(portal, IQN, auth=good)
        (lun,) = result.luns
        assert lun.size_bytes == expected, f"size {lun.size_bytes} != {expected}"
        return (
            f"LUN {lun.lun}: {lun.size_bytes} bytes = backing file, {lun.block_size} B blocks, "
            f"{lun.vendor} {lun.product}, serial {lun.serial}"
        )

    async def wrong_secret_refused() -> str:
        bad = Auth(ChapCredentials(user, _secret("wrong secret")))
        try:
            await probe(portal, IQN, auth=bad)
        except AuthenticationFailed as exc:
            return f"refused with status 0x{exc.status:04x}"
        raise AssertionError("a wrong secret was accepted")

    async def impostor_caught() -> str:
        bad = Auth(ChapCredentials(user, secret), ChapCredentials(target_user, _secret("x")))
        try:
            await probe(portal, IQN, auth=bad)
        except MutualAuthFailed:
            return "the target could not prove the secret we expected"
        raise AssertionError("a target with the wrong secret was trusted")

    async def logged_out() -> str:
        for _ in range(100):  # tgt drops the nexus right after the Logout Response
            if backend.session_count(IQN) == 0:
                return "tgt lists no session for the target"
            await asyncio.sleep(0.02)
        raise AssertionError(f"{backend.session_count(IQN)} session(s) left open")

    await check("discover (SendTargets)", discovered)
    await check("probe with mutual CHAP", probed)
    await check("wrong CHAP secret refused", wrong_secret_refused)
    await check("wrong target secret caught", impostor_caught)
    await check("sessions logged out", logged_out)


def run_checks() -> list[Step]:
    """Start tgtd, run every check, stop tgtd, remove the files; the steps with results."""
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="eqliscsi-demo-") as tmp:
        disk = Path(tmp) / "demo-vol.img"
        with open(disk, "wb") as f:
            f.truncate(SIZE)
        started = time.perf_counter()
        try:
            backend = TgtBackend.start("127.0.0.1", log_path=Path(tmp) / "tgtd.log")
        except EqliscsiError as exc:
            return [Step("start tgtd", False, str(exc), time.perf_counter() - started)]
        steps.append(
            Step("start tgtd", True, f"portal {backend.portal}", time.perf_counter() - started)
        )
        try:
            asyncio.run(_run(backend, disk, SIZE, steps))
        except EqliscsiError as exc:
            steps.append(Step("configure target", False, str(exc), 0.0))
        finally:
            backend.close()
    return steps


def main() -> int:
    print("eqliscsi demo: native iSCSI client against a real tgtd on loopback")
    steps = run_checks()
    width = max(len(s.name) for s in steps)
    for s in steps:
        mark = "ok  " if s.ok else "FAIL"
        print(f"  [{mark}] {s.name:<{width}}  {s.seconds * 1000:8.1f} ms  {s.detail}")
    failed = [s for s in steps if not s.ok]
    print(f"{len(steps) - len(failed)}/{len(steps)} checks passed; tgtd stopped, files removed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
