"""Secrets (SAN password, CHAP secrets) as values that refuse to be printed.

Standards: a secret never appears in argv, a process title, a log line or an error
message.  So secrets enter the program only from a file, a file descriptor or an
environment variable, and live in :class:`Secret`, whose ``repr``/``str`` are
redacted.  Code that really needs the bytes calls :meth:`Secret.reveal`, which is
easy to grep for.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from eqliscsi._record import Record
from eqliscsi.errors import ConfigError

__all__ = ["REDACTED", "Secret", "redact"]

REDACTED = "***"

# EqualLogic accepts CHAP secrets up to 255 characters and CLI passwords well below
# that; anything larger is a wrong file, not a secret.
_MAX_SECRET_BYTES = 4096


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Secret(Record):
    """An opaque secret value.  ``origin`` names where it came from, never what it is."""

    _value: bytes = field(repr=False)
    origin: str = "inline"

    def __post_init__(self) -> None:
        if not self._value:
            raise ConfigError(f"The secret from {self.origin} is empty; put the secret in it.")
        if len(self._value) > _MAX_SECRET_BYTES:
            raise ConfigError(
                f"The secret from {self.origin} is longer than {_MAX_SECRET_BYTES} bytes; "
                "point to a file that holds only the secret."
            )

    def reveal(self) -> bytes:
        return self._value

    def reveal_str(self) -> str:
        return self._value.decode("utf-8")

    def __repr__(self) -> str:
        return f"Secret({REDACTED}, origin={self.origin!r})"

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._value)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secret:
        """Read a secret from a file; one trailing newline is dropped (``echo`` adds one)."""
        p = os.fspath(path)  # not pathlib: a remote reads its secret before its first CLI byte
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ConfigError(
                f"Secret file {p} does not exist; create it or fix the path."
            ) from None
        except PermissionError:
            raise ConfigError(
                f"Secret file {p} cannot be read by this user; fix its owner or mode."
            ) from None
        except IsADirectoryError:
            raise ConfigError(f"Secret file {p} is a directory; point to a file.") from None
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        return cls(data, origin=f"file {p}")

    @classmethod
    def from_env(cls, name: str, environ: dict[str, str] | None = None) -> Secret:
        env = os.environ if environ is None else environ
        value = env.get(name)
        if value is None:
            raise ConfigError(f"Environment variable {name} is not set; export the secret in it.")
        return cls(value.encode("utf-8"), origin=f"environment variable {name}")


def is_private_file(path: str | os.PathLike[str]) -> bool:
    """True when no one but the owner (and group, at most read) can read ``path``."""
    mode = os.stat(path).st_mode
    return not (mode & stat.S_IROTH or mode & stat.S_IWOTH)


def redact(text: str, secrets: Iterable[Secret | bytes | str]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``.

    A last line of defence for transcripts and subprocess output; code should not put
    secrets in text in the first place.
    """
    for s in secrets:
        raw = s.reveal() if isinstance(s, Secret) else s
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if value:
            text = text.replace(value, REDACTED)
    return text
