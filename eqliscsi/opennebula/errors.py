"""Errors of the OpenNebula driver layer.

Every class derives from a family base in :mod:`eqliscsi.errors` so that the runner
maps it to an exit status with :func:`eqliscsi.errors.exit_code_for`.  Messages are
one sentence for the OpenNebula admin: they end up verbatim in ``oned.log`` and in
the image or VM's error field.
"""

from __future__ import annotations

from eqliscsi.errors import ConfigError, DriverError, ExitCode, UsageError

__all__ = [
    "BadCallError",
    "BadDocumentError",
    "BadValueError",
    "ConfFileError",
    "CopyFailedError",
    "RestrictedPathError",
    "SizeUnknownError",
    "UnknownActionError",
]


class BadCallError(UsageError):
    """oned's argv/stdin did not match any calling convention we know."""

    reference = "driver-bad-call"


class BadDocumentError(DriverError):
    """The DS_DRIVER_ACTION_DATA or VM document is not the XML oned sends."""

    reference = "driver-bad-document"
    exit_code = ExitCode.USAGE


class BadValueError(DriverError):
    """A value from oned or a template is unsafe or malformed; we reject, never guess."""

    reference = "driver-bad-value"
    exit_code = ExitCode.USAGE


class RestrictedPathError(DriverError):
    """An image PATH lies in a directory the datastore forbids (RESTRICTED_DIRS)."""

    reference = "driver-restricted-path"


class SizeUnknownError(DriverError):
    """``stat`` could not determine the size of an image PATH."""

    reference = "driver-size-unknown"


class UnknownActionError(DriverError):
    """A remote asked the runner for an action this package does not implement."""

    reference = "driver-unknown-action"
    exit_code = ExitCode.USAGE


class CopyFailedError(DriverError):
    """Writing image data onto a volume failed (cp)."""

    reference = "driver-copy-failed"


class ConfFileError(ConfigError):
    """``eqliscsi.conf`` cannot be read as the shell-assignment subset we accept."""

    reference = "driver-conf-file"
