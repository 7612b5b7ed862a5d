"""``account select NAME show`` and ``grpparams target-auth-*`` (group accounts).

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eqliscsi.san.commands import Command, _invalid, validate_chap_user
from eqliscsi.san.commands._chap import _CHAP_SECRET_RE
from eqliscsi.san.errors import SanInvalidValue
from eqliscsi.secret import REDACTED, Secret

__all__ = ["AccountShow", "GrpparamsTargetAuth"]

# Local administration account names (Group Manager: letters, digits and a few marks).
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", re.ASCII)


@dataclass(frozen=True, eq=False, repr=False)
class AccountShow(Command):
    """``account select NAME show``: the account's type and pools.

    The account types (group, pool and volume administrator, read-only) are the
    Administrator's Guide's ("Account Permissions"); this command form and its
    ``Type:``/``Pools:`` keys follow the CLI's ``<object> select <name> show``
    pattern and are unverified [U] (equallogic-cli.md has no capture of it).
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ACCOUNT_RE.fullmatch(self.name):
            raise _invalid("account name", self.name, "1 to 63 characters from A-Z a-z 0-9 . _ -")

    def words(self) -> tuple[str, ...]:
        return ("account", "select", self.name, "show")


@dataclass(frozen=True, eq=False, repr=False)
class GrpparamsTargetAuth(Command):
    """``grpparams target-auth-username U`` / ``target-auth-password P``: the group's one
    target-authentication (mutual CHAP) account (Administrator's Guide, "Configure
    Target Authentication").  The password is typed on the channel, never logged."""

    mutating = True
    username: str | None = None
    password: Secret | None = None

    def __post_init__(self) -> None:
        if (self.username is None) == (self.password is None):
            raise SanInvalidValue("Give either the target user name or its password, not both.")
        if self.username is not None:
            validate_chap_user(self.username)
        if self.password is not None and (
            not _CHAP_SECRET_RE.fullmatch(self.password.reveal())
            or any(ch in self.password.reveal() for ch in (b'"', b"'", b"\\"))
        ):
            raise SanInvalidValue(
                f"The target CHAP secret from {self.password.origin} is not accepted; use 12 "
                "to 255 printable ASCII characters without spaces, quotes or backslashes."
            )

    def words(self) -> tuple[str, ...]:
        if self.username is not None:
            return ("grpparams", "target-auth-username", self.username)
        assert self.password is not None
        return ("grpparams", "target-auth-password", self.password.reveal_str())

    def secrets(self) -> tuple[bytes, ...]:
        return () if self.password is None else (self.password.reveal(),)

    def display(self) -> str:
        if self.username is not None:
            return " ".join(self.words())
        return f"grpparams target-auth-password {REDACTED}"
