"""The text codec remembers pairs it already checked: same answers, bounded, no CHAP.

A login sends and receives the same operational pairs to every target, so
``encode_text``/``decode_text`` keep the pairs they validated.  The cache must never
change a result, never let an invalid pair through, never hold a CHAP value and
never grow past its bound.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.iscsi_discovery import _text
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduDecodeError


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    saved = dict(_text._ENCODED), dict(_text._DECODED)
    _text._ENCODED.clear()
    _text._DECODED.clear()
    yield
    _text._ENCODED.clear()
    _text._DECODED.clear()
    _text._ENCODED.update(saved[0])
    _text._DECODED.update(saved[1])


keys = st.from_regex(r"[A-Za-z0-9.\-+@_]{1,20}", fullmatch=True)
values = st.text(st.characters(blacklist_characters="\0", codec="utf-8"), max_size=40)


@given(st.lists(st.tuples(keys, values), max_size=8))
def test_warm_cache_gives_the_cold_answer(pairs: list[tuple[str, str]]) -> None:
    cold = _text.encode_text(pairs)
    assert _text.encode_text(pairs) == cold
    decoded = _text.decode_text(cold)
    assert decoded == pairs
    assert _text.decode_text(cold) == decoded


@pytest.mark.parametrize(
    "pair",
    [("bad key", "x"), ("Key", "a\0b"), ("TargetName", "x" * 224), ("", "v")],
    ids=["space-in-key", "nul-in-value", "name-too-long", "empty-key"],
)
def test_invalid_pairs_are_refused_every_time_and_never_kept(pair: tuple[str, str]) -> None:
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            _text.encode_text([pair])
    assert pair not in _text._ENCODED


def test_invalid_received_text_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(PduDecodeError):
            _text.decode_text(b"MaxBurstLength=" + b"9" * 300 + b"\0")
    assert _text._DECODED == {}


def test_chap_pairs_are_never_kept() -> None:
    pairs = [("CHAP_A", "5"), ("CHAP_N", "user"), ("CHAP_R", "0x" + "ab" * 16)]
    wire = _text.encode_text(pairs)
    assert _text.decode_text(wire) == pairs
    assert _text._ENCODED == {} and _text._DECODED == {}


def test_caches_stop_growing_at_their_bound() -> None:
    for n in range(_text._CACHE_MAX + 50):
        pair = [("X-eqliscsi-test", str(n))]
        assert _text.decode_text(_text.encode_text(pair)) == pair
    assert len(_text._ENCODED) == _text._CACHE_MAX
    assert len(_text._DECODED) == _text._CACHE_MAX
