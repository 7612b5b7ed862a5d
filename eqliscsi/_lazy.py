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

:func:`defer_import` does the same for a whole standard-library module that a remote's
dependencies import but never use (see ``eqliscsi/__init__.py``).
"""

from __future__ import annotations

import importlib
import sys
import types
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


class _Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a stdlib module until the first attribute read,
    which imports the real module, gives this stand-in its namespace and puts the real
    module back in ``sys.modules``."""

    def __getattr__(self, attr: str) -> object:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(vars(real))  # later reads through this object are plain
        return getattr(real, attr)


def defer_import(name: str) -> None:
    """Make ``import name`` cheap until something reads an attribute of the module.

    For modules that others import at their top but read only on a path a remote never
    takes.  A module already imported is left alone.
    """
    if name not in sys.modules:
        sys.modules[name] = _Deferred(name)
