"""A logger that imports :mod:`logging` only when something is logged.

Every remote imports the SAN client on its way to the first CLI command, and there
``import logging`` (with threading, traceback, string, weakref) costs several ms of the
60 ms per-action budget (docs/performance.md) for messages that only failures and
retries produce.  Records go to ``logging.getLogger(name)`` exactly as before, so
handlers, levels and pytest's caplog see no difference.
"""

from __future__ import annotations

__all__ = ["LazyLogger"]


class LazyLogger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, level: str, msg: str, args: tuple[object, ...]) -> None:
        import logging  # noqa: PLC0415 - the point of this class

        getattr(logging.getLogger(self.name), level)(msg, *args)

    def debug(self, msg: str, *args: object) -> None:
        self._log("debug", msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._log("info", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._log("warning", msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._log("error", msg, args)
