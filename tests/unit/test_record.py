"""eqliscsi._record.Record against the methods dataclasses generates."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eqliscsi
from eqliscsi._record import Record


@dataclass(frozen=True, slots=True)
class Generated:
    """Reference: every method generated."""

    a: int
    b: str = "x"
    hidden: str = field(default="h", repr=False)
    loose: int = field(default=0, compare=False)
    hashed_only: int = field(default=0, compare=True, hash=False)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Shared(Record):
    """The same fields, with eq/hash/repr from Record."""

    a: int
    b: str = "x"
    hidden: str = field(default="h", repr=False)
    loose: int = field(default=0, compare=False)
    hashed_only: int = field(default=0, compare=True, hash=False)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class OtherShared(Shared):
    """Same fields, another class: never equal to Shared, as with generated methods."""


VALUES = st.tuples(
    st.integers(-2, 2),
    st.sampled_from(["x", "y", "'"]),
    st.sampled_from(["h", "i"]),
    st.integers(0, 1),
    st.integers(0, 1),
)


@given(VALUES, VALUES)
def test_record_methods_match_the_generated_ones(v: tuple, w: tuple) -> None:  # type: ignore[type-arg]
    g1, g2 = Generated(*v), Generated(*w)
    s1, s2 = Shared(*v), Shared(*w)
    assert (s1 == s2) == (g1 == g2)
    assert (s1 != s2) == (g1 != g2)
    assert hash(s1) == hash(g1)  # both hash the same tuple of values
    assert repr(s1) == repr(g1).replace("Generated(", "Shared(", 1)
    assert s1 != OtherShared(*v)
    assert s1.__eq__(g1) is NotImplemented


def test_record_classes_are_frozen_dataclasses_that_use_its_methods() -> None:
    # Every Record subclass in the package must be a frozen dataclass declared with
    # eq=False, repr=False; otherwise dataclasses generates (and compiles) its own.
    for info in pkgutil.walk_packages(eqliscsi.__path__, "eqliscsi."):
        if not info.name.endswith("__main__"):  # those run a command when imported
            importlib.import_module(info.name)
    found = []
    stack: list[type] = [Record]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls is Record or not cls.__module__.startswith("eqliscsi."):
            continue
        found.append(cls.__qualname__)
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert dataclasses.is_dataclass(cls) and params.frozen, cls
        assert cls.__eq__ is Record.__eq__, cls
        assert cls.__hash__ is Record.__hash__, cls
        assert cls.__repr__ is Record.__repr__ or "__repr__" in vars(cls), cls
    assert {"EqlConfig", "SanEndpoint", "OneVersion", "Secret"} <= set(found)


@pytest.mark.parametrize(
    ("a", "b", "less"),
    [
        pytest.param((6, 10, 0), (7, 0, 0), True, id="minor-vs-major"),
        pytest.param((5, 12, 0), (5, 2, 9), False, id="numeric-not-text"),
        pytest.param((6, 8, 1), (6, 8, 1), False, id="equal"),
        pytest.param((4, 4, 0), (4, 4, 1), True, id="patch"),
    ],
)
def test_one_version_orders_as_order_true_did(
    a: tuple[int, int, int], b: tuple[int, int, int], less: bool
) -> None:
    from eqliscsi.opennebula.args import OneVersion  # noqa: PLC0415

    va, vb = OneVersion(*a), OneVersion(*b)
    assert (va < vb, va <= vb, va > vb, va >= vb) == (less, a <= b, a > b, a >= b)
    with pytest.raises(TypeError):
        _ = va < a
