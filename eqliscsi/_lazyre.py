"""Regular expressions compiled on first use instead of at import.

Every remote is a new process that imports the modules on its path and then runs one
action (docs/performance.md, "Remote start-up").  Compiling a module's patterns at
import costs ~0.1-0.3 ms each, for patterns most actions never use: a ``monitor``
parses one pool reply, not volume tables, IQNs or snapshot names.  A
:class:`LazyPattern` has the methods of :class:`re.Pattern` the package uses and
compiles on the first call; ``re`` caches nothing extra.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

__all__ = ["LazyPattern"]


class LazyPattern:
    """``re.compile(pattern, flags)``, done when a method is first called."""

    __slots__ = ("_compiled", "_flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self._flags)
        return self._compiled

    def match(self, string: str) -> re.Match[str] | None:
        return self.compiled.match(string)

    def fullmatch(self, string: str) -> re.Match[str] | None:
        return self.compiled.fullmatch(string)

    def search(self, string: str) -> re.Match[str] | None:
        return self.compiled.search(string)

    def finditer(self, string: str) -> Iterator[re.Match[str]]:
        return self.compiled.finditer(string)

    def sub(self, repl: str | Callable[[re.Match[str]], str], string: str) -> str:
        return self.compiled.sub(repl, string)

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern!r})"
