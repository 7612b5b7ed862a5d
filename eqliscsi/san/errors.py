"""Errors of the EqualLogic Group Manager CLI client.

Every class derives from :class:`eqliscsi.errors.SanError`; each message is one sentence for
the admin saying what failed and what to do.  Messages never contain a secret: command text
in them is the redacted display form (see :meth:`eqliscsi.san.commands.Command.display`).
"""

from __future__ import annotations

from eqliscsi.errors import ExitCode, SanError

__all__ = [
    "SanAuthError",
    "SanCommandError",
    "SanConnectionError",
    "SanHostKeyError",
    "SanInvalidValue",
    "SanNotOwned",
    "SanObjectExists",
    "SanObjectMissing",
    "SanProtocolError",
    "SanTimeout",
]


class SanInvalidValue(SanError):
    """A value (volume name, size, description, ...) cannot be sent to the CLI as it is."""

    reference = "san-invalid-value"
    exit_code = ExitCode.USAGE


class SanCommandError(SanError):
    """The array answered a command with an error line (``% Error - ...`` or ``Error: ...``)."""

    reference = "san-command-failed"

    def __init__(self, message: str, *, command: str, error_line: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.command = command
        self.error_line = error_line


class SanObjectMissing(SanCommandError):
    """The array says the volume, snapshot or record does not exist."""

    reference = "san-object-missing"


class SanObjectExists(SanCommandError):
    """The array says the name is already in use."""

    reference = "san-object-exists"


class SanNotOwned(SanError):
    """A destructive operation was refused because the volume does not carry our tag."""

    reference = "san-not-owned"


class SanConnectionError(SanError):
    """The SSH connection to the group could not be made or broke."""

    reference = "san-connection-failed"

    def __init__(self, message: str, *, hint: str | None = None, mutating_sent: bool = False):
        super().__init__(message, hint=hint)
        # True once a command that changes the array was written to the channel: the
        # caller must then not retry blindly (bug 1441719 in Cinder retried creates).
        self.mutating_sent = mutating_sent


class SanAuthError(SanConnectionError):
    """The group refused the account or its password/key."""

    reference = "san-login-failed"


class SanHostKeyError(SanConnectionError):
    """The group's SSH host key is unknown or does not match."""

    reference = "san-host-key-mismatch"


class SanTimeout(SanConnectionError):
    """The group did not answer within the timeout."""

    reference = "san-timeout"
    exit_code = ExitCode.TIMEOUT


class SanProtocolError(SanError):
    """The CLI printed something the client cannot interpret."""

    reference = "san-unexpected-output"
