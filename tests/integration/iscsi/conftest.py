"""Fixtures for the native iSCSI client's interop tests against real targets.

The backend is a fixture parameter: every test that asks for ``backend`` (or
``make_backend``) runs once per kind listed in ``BACKENDS``: tgt on loopback, and
LIO in the kernel guest (the session's one booted ``guest_vm``, reached through
QEMU's 127.0.0.1 forward).  Where the two legitimately differ, tests read the
``Quirks`` table instead of naming a backend.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import AuthenticationFailed, MutualAuthFailed
from eqliscsi.secret import Secret
from rig.need import need, need_executable
from rig.targets.base import ChapAccount, TargetBackend
from rig.targets.lio import LioBackend
from rig.targets.tgt import TgtBackend


@contextmanager
def _tgt(host: str, log: Path, request: pytest.FixtureRequest) -> Iterator[TargetBackend]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    need(os.geteuid() == 0, "tgtd needs root to create its control socket in /var/run/tgtd")
    backend = TgtBackend.start(host, log_path=log)
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def _lio(host: str, log: Path, request: pytest.FixtureRequest) -> Iterator[TargetBackend]:
    # The guest is reached only through QEMU's forward on 127.0.0.1, and one guest
    # has one LIO: a test that wants a second target elsewhere (IPv6, a redirect
    # pair) is not applicable to LIO here, rather than a missing component.
    # Tests that need such a target carry ``needs_backend(...)`` and are not generated
    # for LIO at all (see pytest_collection_modifyitems), so this is only a guard.
    if host != "127.0.0.1":
        raise AssertionError(f"LIO in the kernel guest is reached only on 127.0.0.1, not {host}")
    vm = request.getfixturevalue("guest_vm")
    backend = LioBackend(vm)
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
    ipv6: bool  # the backend can listen on ::1 (the guest is forwarded on 127.0.0.1 only)
    portals: int  # how many separate portals one test can start (a redirect needs 2-3)
    vendor_product: tuple[str, str]  # standard INQUIRY of a file-backed disk
    # No credentials for a target (or discovery portal) that enforces CHAP.  The client
    # then starts at the operational stage (as libiscsi and open-iscsi do) and both
    # answer 0x0201; LIO would close the connection instead on AuthMethod=None in a
    # security stage, which the client no longer sends.
    none_to_chap: type[Exception]
    # SendTargets: tgt advertises the address it listens on (the one we dialled);
    # LIO in the guest advertises the guest's own 10.0.2.15:3260 for its wildcard
    # portal, which the host never dials.
    advertised: tuple[str, int] | None  # None: the dialled portal itself


QUIRKS: dict[str, Quirks] = {
    "tgt": Quirks(
        acl_refusal_status=0x0203,
        unknown_target_status=0x0203,
        chap_sha256=False,
        mutual_unconfigured=AuthenticationFailed,
        redirects=True,
        ipv6=True,
        portals=3,
        vendor_product=("IET", "VIRTUAL-DISK"),
        none_to_chap=AuthenticationFailed,
        advertised=None,
    ),
    "lio": Quirks(
        acl_refusal_status=0x0202,
        unknown_target_status=0x0301,
        chap_sha256=True,
        mutual_unconfigured=MutualAuthFailed,
        redirects=False,
        ipv6=False,
        portals=1,
        vendor_product=("LIO-ORG", "FILEIO"),
        none_to_chap=AuthenticationFailed,
        advertised=("10.0.2.15", 3260),
    ),
}


def advertised_portal(backend: TargetBackend, quirks: Quirks) -> tuple[str, int]:
    """The address and port a SendTargets answer of ``backend`` carries."""
    return quirks.advertised or (backend.portal.host, backend.portal.port)


# kind -> factory(host, log file, request); a factory skips/fails via rig.need when
# unavailable.
BACKENDS: dict[
    str, Callable[[str, Path, pytest.FixtureRequest], AbstractContextManager[TargetBackend]]
] = {
    "tgt": _tgt,
    "lio": _lio,
}
# Marks per kind, so `-m "not guest"` deselects the LIO half of the suite.
_MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "tgt": (pytest.mark.tgt,),
    "lio": (pytest.mark.guest, pytest.mark.lio),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the (test, backend) pairs a backend cannot take at all.

    ``@pytest.mark.needs_backend("redirects", "ipv6")`` names ``Quirks`` fields that must
    be true (or, for ``portals``, at least the count given as ``portals=N``).  A pair that
    cannot apply is deselected at collection, not skipped at run time, so under
    ``EQLISCSI_RIG_REQUIRED=1`` every skip left means a missing component.  The
    not-applicable cells are listed in docs/interop.md.
    """
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("backend_kind") if callspec else None
        marker = item.get_closest_marker("needs_backend")
        if kind is None or marker is None:
            keep.append(item)
            continue
        quirks = QUIRKS[kind]
        applies = all(getattr(quirks, name) for name in marker.args) and all(
            getattr(quirks, name) >= need for name, need in marker.kwargs.items()
        )
        (keep if applies else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


MakeBackend = Callable[..., TargetBackend]
MakeDisk = Callable[..., Path]


@pytest.fixture(
    params=[pytest.param(k, marks=_MARKS[k], id=f"backend={k}") for k in sorted(BACKENDS)]
)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def quirks(backend_kind: str) -> Quirks:
    return QUIRKS[backend_kind]


@pytest.fixture
def make_backend(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MakeBackend]:
    """Start more targets of this kind (a redirect pair needs two); all stop at teardown."""
    counter = itertools.count()
    with ExitStack() as stack:

        def make(host: str = "127.0.0.1") -> TargetBackend:
            log = tmp_path / f"{backend_kind}-{next(counter)}.log"
            return stack.enter_context(BACKENDS[backend_kind](host, log, request))

        yield make


@pytest.fixture
def backend(make_backend: MakeBackend) -> TargetBackend:
    return make_backend()


@pytest.fixture
def make_disk(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MakeDisk]:
    """Sparse backing files: ``make_disk(size_bytes=...)``.

    LIO's fileio backstore opens its file inside the guest, so for LIO the files go
    to the guest's shared directory (and are removed afterwards).
    """
    counter = itertools.count()
    where = tmp_path
    if backend_kind == "lio":
        vm = request.getfixturevalue("guest_vm")
        where = vm.share_dir / f"disks-{os.getpid()}-{id(request)}"
        where.mkdir()
    made: list[Path] = []

    def make(size_bytes: int = 8 << 20, name: str | None = None) -> Path:
        path = where / (name or f"disk{next(counter)}.img")
        made.append(path)
        with open(path, "wb") as f:
            f.truncate(size_bytes)
        return path

    yield make
    if where is not tmp_path:
        for path in made:
            path.unlink(missing_ok=True)
        where.rmdir()


def chap(user: str, secret: str) -> ChapAccount:
    """A throwaway test account (see rig/targets/tgt.py on tgtadm and argv)."""
    return ChapAccount(user, Secret(secret.encode(), origin=f"test account {user}"))
