"""The one error hierarchy of eqliscsi.

Every exception the package raises on purpose derives from :class:`EqliscsiError`.
Each subsystem has a family base here (iSCSI, SAN, driver, config, preflight, rig);
subsystems define their specific errors in their own ``errors`` modules, deriving
from these bases, so that callers can catch a whole family without importing the
subsystem.

Admin-facing rule: ``str(error)`` is **one sentence that says what to do** (or what
failed and why, when the fix is obvious from it).  Structured fields travel next to
the message so that renderers (oned's framing, the preflight table, ``--json``) never
parse text.  A ``reference`` is a stable kebab-case id, in the manner of pip's
``DiagnosticPipError``, that tests and documentation can rely on.

Exit codes are decided here, once: :func:`exit_code_for` maps any exception to an
:class:`ExitCode`.  The CLI and the remotes' runner both call it.
"""

from __future__ import annotations

import enum
import re

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import ClassVar

__all__ = [
    "ConfigError",
    "DriverError",
    "EqliscsiError",
    "ExitCode",
    "IscsiError",
    "PreflightError",
    "RigError",
    "SanError",
    "UsageError",
    "exit_code_for",
]

_REFERENCE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class ExitCode(enum.IntEnum):
    """Process exit statuses shared by the CLI and the remotes.

    oned only distinguishes zero from non-zero; the distinct values exist for scripts
    and for the preflight checker (whose 0/1/2 contract is its own, see ``cli``).
    """

    OK = 0
    ERROR = 1  # an expected failure, explained in one line
    USAGE = 2  # bad arguments or bad input from the caller
    CONFIG = 3  # configuration cannot be used as written
    ISCSI = 4  # the iSCSI target refused or broke the protocol
    SAN = 5  # the EqualLogic CLI refused or could not be reached
    TIMEOUT = 6  # something did not answer in time
    INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE)


class EqliscsiError(Exception):
    """Root of every error eqliscsi raises on purpose.

    Args:
        message: one sentence for the admin; it must never contain a secret.
        hint: optional second sentence: how to fix it, when the message alone
            does not say.
    """

    reference: ClassVar[str] = "eqliscsi-error"
    exit_code: ClassVar[ExitCode] = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # A stable id is part of the contract; catch typos at import time.
        if not _REFERENCE_RE.match(cls.reference):
            raise TypeError(f"{cls.__name__}.reference must be kebab-case: {cls.reference!r}")

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message.rstrip('.')}. {self.hint}"
        return self.message


class UsageError(EqliscsiError):
    """The caller passed arguments or input that cannot be used."""

    reference = "usage-error"
    exit_code = ExitCode.USAGE


class ConfigError(EqliscsiError):
    """A configuration file, template attribute or secret source is unusable."""

    reference = "config-error"
    exit_code = ExitCode.CONFIG


class IscsiError(EqliscsiError):
    """Family base for the native iSCSI client (``eqliscsi.iscsi_discovery``)."""

    reference = "iscsi-error"
    exit_code = ExitCode.ISCSI


class SanError(EqliscsiError):
    """Family base for the EqualLogic Group Manager CLI client (``eqliscsi.san``)."""

    reference = "san-error"
    exit_code = ExitCode.SAN


class DriverError(EqliscsiError):
    """Family base for OpenNebula driver actions (``eqliscsi.opennebula``)."""

    reference = "driver-error"


class PreflightError(EqliscsiError):
    """Family base for the preflight checker's own failures (not check findings)."""

    reference = "preflight-error"


class RigError(EqliscsiError):
    """Family base for the test rig (fake SAN, hosts, guests, containers)."""

    reference = "rig-error"


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit status for ``exc``: its family's code, or INTERNAL for a bug."""
    if isinstance(exc, EqliscsiError):
        return exc.exit_code
    if isinstance(exc, TimeoutError):
        return ExitCode.TIMEOUT
    return ExitCode.INTERNAL
