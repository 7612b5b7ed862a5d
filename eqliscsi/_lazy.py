"""Module attributes that live in a submodule and are imported on first read (PEP 562).

A remote imports only what its action needs (issues 3 and 4: start-up to the first CLI
byte), so modules such as :mod:`eqliscsi.san.commands` or
:mod:`eqliscsi.opennebula.output` keep their public names while the classes behind most
of them are created only when something reads them.  Each such module defines

    def __getattr__(name: str) -> object:
        return _lazy.load(__name__, _PACKAGE, _LAZY, name)

    def __dir__() -> list[str]:
        return _lazy.names(__name__, _LAZY)

with ``_LAZY`` mapping each lazy name to the submodule (of ``_PACKAGE``) defining it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping


def load(module: str, package: str, where: Mapping[str, str], name: str) -> object:
    """``name`` of ``module``, imported from ``package.where[name]``; later reads of it
    are plain module attributes (``__getattr__`` is not called again)."""
    sub = where.get(name)
    if sub is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{package}.{sub}"), name)
    setattr(sys.modules[module], name, value)
    return value


def names(module: str, where: Mapping[str, str]) -> list[str]:
    """``dir(module)``: what it has defined so far and every lazy name."""
    return sorted(set(vars(sys.modules[module])) | set(where))
