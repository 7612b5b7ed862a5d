"""The pyexpat reader of oned's documents, against ElementTree as the reference parser."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.opennebula import _xml
from eqliscsi.opennebula.errors import BadDocumentError
from tests.unit.opennebula import documents as docs

Tree = tuple[str, str, bool, list["Tree"]]  # tag, text, as CDATA, children

TAGS = st.sampled_from(["DATASTORE", "IMAGE", "ID", "NAME", "TEMPLATE", "DISK", "X_1", "a.b"])
# Characters XML 1.0 allows, CR excepted (the XML spec normalizes it to LF on input).
XML_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\ufffe\uffff").filter(
        lambda ch: ch in "\t\n" or ord(ch) >= 0x20
    ),
    max_size=12,
)
TREES: st.SearchStrategy[Tree] = st.recursive(
    st.tuples(TAGS, XML_TEXT, st.booleans(), st.just([])),
    lambda kids: st.tuples(TAGS, st.just(""), st.just(False), st.lists(kids, max_size=4)),
    max_leaves=12,
)


def _render(tree: Tree) -> str:
    tag, text, cdata, children = tree
    body = f"<![CDATA[{text}]]>" if cdata and "]]>" not in text else escape(text)
    return f"<{tag}>{body}{''.join(_render(c) for c in children)}</{tag}>"


def _ours(elem: _xml.Element) -> tuple[str, str, list[object]]:
    return (elem.tag, elem.text, [_ours(c) for c in elem])


def _reference(elem: ET.Element) -> tuple[str, str, list[object]]:
    # ElementTree splits an element's own text into .text and its children's .tail.
    text = (elem.text or "") + "".join(c.tail or "" for c in elem)
    return (elem.tag, text, [_reference(c) for c in elem])


@given(TREES)
def test_tree_equals_elementtree(tree: Tree) -> None:
    document = _render(tree).encode()
    assert _ours(_xml.parse(document, "test")) == _reference(ET.fromstring(document))


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_one_line(data: bytes) -> None:
    try:
        _xml.parse(data, "test")
    except BadDocumentError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(docs.BILLION_LAUGHS, "declares a DTD or entities", id="billion-laughs"),
        pytest.param(docs.EXTERNAL_ENTITY, "declares a DTD or entities", id="external-entity"),
        pytest.param(b"<!DOCTYPE X><X/>", "declares a DTD or entities", id="bare-doctype"),
        pytest.param(
            b'<!DOCTYPE X SYSTEM "http://127.0.0.1/x.dtd"><X/>',
            "declares a DTD or entities",
            id="external-dtd",
        ),
        pytest.param(b"<X>&undefined;</X>", "not well-formed XML (undefined entity", id="undef"),
        pytest.param(b"<X><Y></X>", "not well-formed XML (mismatched tag", id="mismatched"),
        pytest.param(b"<X/><Y/>", "not well-formed XML (junk after document", id="two-roots"),
        pytest.param(b"<X>", "not well-formed XML (no element found", id="truncated"),
    ],
)
def test_refused_documents(document: bytes, message: str) -> None:
    with pytest.raises(BadDocumentError, match=r"^The VM document ") as err:
        _xml.parse(document, "VM")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("document", "path", "texts"),
    [
        pytest.param(b"<R><A>1</A><A>2</A></R>", "A", ["1", "2"], id="children"),
        pytest.param(b"<R><T><D>x</D></T><T><D>y</D></T></R>", "T/D", ["x", "y"], id="path"),
        pytest.param(b"<R><A>1</A></R>", "B", [], id="none"),
        pytest.param(b"<R><A>&amp;&lt;&#65;&#x42;</A></R>", "A", ["&<AB"], id="entities"),
        pytest.param(b"<R><A><![CDATA[<x> & y]]></A></R>", "A", ["<x> & y"], id="cdata"),
        pytest.param(
            "<?xml version='1.0' encoding='ISO-8859-1'?><R><A>\xe9</A></R>".encode("latin-1"),
            "A",
            ["\xe9"],
            id="declared-encoding",
        ),
    ],
)
def test_findall(document: bytes, path: str, texts: list[str]) -> None:
    root = _xml.parse(document, "test")
    assert [e.text for e in root.findall(path)] == texts
    first = root.find(path)
    assert (first.text if first is not None else None) == (texts[0] if texts else None)
    assert root.findtext(path) == (texts[0] if texts else None)
