"""``chapuser create|show|delete`` (local CHAP accounts of the group).

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eqliscsi.san.commands import Command, validate_chap_user
from eqliscsi.san.errors import SanInvalidValue
from eqliscsi.secret import REDACTED, Secret

__all__ = ["ChapUserCreate", "ChapUserDelete", "ChapUserShow"]

_CHAP_SECRET_RE = re.compile(rb"[\x21-\x7e]{12,255}")


@dataclass(frozen=True, eq=False, repr=False)
class ChapUserCreate(Command):
    """``chapuser create U [password P]``; P is typed on the channel, never logged."""

    mutating = True
    name: str
    password: Secret | None = None

    def __post_init__(self) -> None:
        validate_chap_user(self.name)
        # 12-255 printable non-space ASCII: RFC 3720 §8.2.1 recommends >= 96-bit secrets and
        # anything with spaces or quotes would split into CLI words.
        if self.password is not None and (
            not _CHAP_SECRET_RE.fullmatch(self.password.reveal())
            or b'"' in self.password.reveal()
            or b"\\" in self.password.reveal()
            or b"'" in self.password.reveal()
        ):
            raise SanInvalidValue(
                f"The CHAP secret from {self.password.origin} is not accepted; use 12 to 255 "
                "printable ASCII characters without spaces, quotes or backslashes."
            )

    def words(self) -> tuple[str, ...]:
        w = ["chapuser", "create", self.name]
        if self.password is not None:
            w += ["password", self.password.reveal_str()]
        return tuple(w)

    def secrets(self) -> tuple[bytes, ...]:
        return () if self.password is None else (self.password.reveal(),)

    def display(self) -> str:
        w = ["chapuser", "create", self.name]
        if self.password is not None:
            w += ["password", REDACTED]
        return " ".join(w)


@dataclass(frozen=True, eq=False, repr=False)
class ChapUserShow(Command):
    """``chapuser show NAME``."""

    name: str

    def __post_init__(self) -> None:
        validate_chap_user(self.name)

    def words(self) -> tuple[str, ...]:
        return ("chapuser", "show", self.name)


@dataclass(frozen=True, eq=False, repr=False)
class ChapUserDelete(Command):
    """``chapuser delete NAME``."""

    mutating = True
    name: str

    def __post_init__(self) -> None:
        validate_chap_user(self.name)

    def words(self) -> tuple[str, ...]:
        return ("chapuser", "delete", self.name)
