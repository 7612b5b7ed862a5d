"""Fixtures for the native iSCSI client's interop tests against real targets.

The backend is a fixture parameter: every test that asks for ``backend`` (or
``make_backend``) runs once per kind listed in ``BACKENDS``.  Today that is tgt on
loopback; the kernel-guest tier adds ``"lio"`` by registering one more factory here
(and its own ``need`` check), without touching a single test.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import AuthenticationFailed
from eqliscsi.secret import Secret
from rig.need import need, need_executable
from rig.targets.base import ChapAccount, TargetBackend
from rig.targets.tgt import TgtBackend


@contextmanager
def _tgt(host: str, log: Path) -> Iterator[TargetBackend]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    need(os.geteuid() == 0, "tgtd needs root to create its control socket in /var/run/tgtd")
    backend = TgtBackend.start(host, log_path=log)
    try:
        yield backend
    finally:
        backend.close()


@dataclass(frozen=True)
class Quirks:
    """Where real targets legitimately answer differently (reference §10).

    Tests read their expectations from here, so a new backend adds one entry instead
    of editing tests.
    """

    acl_refusal_status: int  # login from an initiator outside the ACL
    unknown_target_status: int  # login to a TargetName that does not exist
    chap_sha256: bool  # False: tgt numbers SHA-1 as "7" and fails a SHA-256 answer
    mutual_unconfigured: type[Exception]  # we ask for mutual, target has no account
    redirects: bool  # per-target login redirection can be configured
    vendor_product: tuple[str, str]  # standard INQUIRY of a file-backed disk
    # tgt answers the 2nd Text continuation with MaxCmdSN = ExpCmdSN - 1 and never
    # reopens the window (see test_150_targets_multi_pdu).
    shuts_window_on_continuation: bool


QUIRKS: dict[str, Quirks] = {
    "tgt": Quirks(
        acl_refusal_status=0x0203,
        unknown_target_status=0x0203,
        chap_sha256=False,
        mutual_unconfigured=AuthenticationFailed,
        redirects=True,
        vendor_product=("IET", "VIRTUAL-DISK"),
        shuts_window_on_continuation=True,
    ),
}

# kind -> factory(host, log file); a factory skips/fails via rig.need when unavailable.
BACKENDS: dict[str, Callable[[str, Path], AbstractContextManager[TargetBackend]]] = {
    "tgt": _tgt,
}

MakeBackend = Callable[..., TargetBackend]
MakeDisk = Callable[..., Path]


@pytest.fixture(params=sorted(BACKENDS), ids=lambda k: f"backend={k}")
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def quirks(backend_kind: str) -> Quirks:
    return QUIRKS[backend_kind]


@pytest.fixture
def make_backend(backend_kind: str, tmp_path: Path) -> Iterator[MakeBackend]:
    """Start more targets of this kind (a redirect pair needs two); all stop at teardown."""
    counter = itertools.count()
    with ExitStack() as stack:

        def make(host: str = "127.0.0.1") -> TargetBackend:
            log = tmp_path / f"{backend_kind}-{next(counter)}.log"
            return stack.enter_context(BACKENDS[backend_kind](host, log))

        yield make


@pytest.fixture
def backend(make_backend: MakeBackend) -> TargetBackend:
    return make_backend()


@pytest.fixture
def make_disk(tmp_path: Path) -> MakeDisk:
    """Sparse backing files: ``make_disk(size_bytes=...)``."""
    counter = itertools.count()

    def make(size_bytes: int = 8 << 20, name: str | None = None) -> Path:
        path = tmp_path / (name or f"disk{next(counter)}.img")
        with open(path, "wb") as f:
            f.truncate(size_bytes)
        return path

    return make


def chap(user: str, secret: str) -> ChapAccount:
    """A throwaway test account (see rig/targets/tgt.py on tgtadm and argv)."""
    return ChapAccount(user, Secret(secret.encode(), origin=f"test account {user}"))
