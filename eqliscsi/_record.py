"""Equality, hashing and ``repr`` for frozen dataclasses, written once.

For every class, ``dataclasses`` writes ``__init__``, ``__repr__``, ``__eq__``,
``__hash__`` (and, when frozen, ``__setattr__``/``__delattr__``) as source text and
compiles each with ``exec``: 0.5-1 ms a class.  A remote creates about fifteen of them
before its first CLI byte, out of a 60 ms start-up budget (issues 3 and 4,
docs/performance.md).  The classes on that path are therefore declared

    @dataclass(frozen=True, slots=True, eq=False, repr=False)
    class Name(Record):

and get these three methods from :class:`Record` instead, which read the class's
fields once and then behave as the generated ones do: equality only between instances
of the same class, over the fields with ``compare=True``, as tuples; the hash of the
tuple of the fields a frozen dataclass hashes; ``Name(field=value, ...)`` over the fields
with ``repr=True``.  ``tests/unit/test_record.py`` checks them against generated methods.
:class:`eqliscsi.san.commands.Command` does the same for the CLI commands.
"""

from __future__ import annotations

from dataclasses import fields

__all__ = ["Record"]

# class -> (names compared, names hashed, names shown in repr)
_LAYOUT: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}


def _layout(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    layout = _LAYOUT.get(cls)
    if layout is None:
        fs = fields(cls)
        layout = (
            tuple(f.name for f in fs if f.compare),
            # dataclasses' rule for a frozen class with eq: hash=None follows compare.
            tuple(f.name for f in fs if (f.compare if f.hash is None else f.hash)),
            tuple(f.name for f in fs if f.repr),
        )
        _LAYOUT[cls] = layout
    return layout


class Record:
    """Base of frozen dataclasses declared with ``eq=False, repr=False`` (see above)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = _layout(self.__class__)[0]
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in _layout(self.__class__)[1]))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in _layout(self.__class__)[2])
        return f"{self.__class__.__qualname__}({shown})"
