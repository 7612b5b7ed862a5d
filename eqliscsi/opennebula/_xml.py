"""oned's XML documents read straight from pyexpat into a small element tree.

Why not ``xml.etree.ElementTree`` with defusedxml: together they cost a remote about 22 M
instructions (~5 ms) of its 60 ms start-up budget (issues 3 and 4, docs/performance.md),
while the documents oned sends (reference §2.2, §6.1, §6.3) use only elements, text and
CDATA.  pyexpat is the C parser ElementTree itself sits on; this module builds just the
part of the tree the driver reads (tag, text, children) and keeps the same safety rules
as defusedxml's ``forbid_dtd``/``forbid_entities``/``forbid_external``: oned never sends a
DOCTYPE, so any DTD is refused as soon as it starts, before an entity could be declared
(the billion-laughs and external-entity attacks both need one).  Predefined entities and
character references (``&amp;``, ``&#10;``) are plain XML and are decoded as usual.

``tests/unit/opennebula/test_xml.py`` checks the tree against ElementTree's on generated
documents.  This module does no I/O.
"""

from __future__ import annotations

from pyexpat import XML_PARAM_ENTITY_PARSING_NEVER, ExpatError, ParserCreate

from eqliscsi.opennebula.errors import BadDocumentError

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Element", "parse"]


class _Forbidden(Exception):
    """Raised inside expat's callbacks; :func:`parse` turns it into its error."""


class Element:
    """One element: ``tag``, its own character data (CDATA included) and its children.

    ``text`` joins all the element's direct character data, where ElementTree keeps
    only what comes before the first child; the two differ only for mixed content,
    which oned's documents do not have.  Attributes are not kept: oned sends none that
    the driver reads.
    """

    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.text = ""
        self.children: list[Element] = []

    def __iter__(self) -> Iterator[Element]:
        return iter(self.children)

    def __len__(self) -> int:
        return len(self.children)

    def __repr__(self) -> str:
        return f"<Element {self.tag!r} ({len(self.children)} children)>"

    def findall(self, path: str) -> list[Element]:
        """Descendants along ``path``: child tags joined by ``/``, as ElementTree's
        ``findall`` reads such a path (no wildcards or predicates)."""
        level = [self]
        for step in path.split("/"):
            level = [child for node in level for child in node.children if child.tag == step]
        return level

    def find(self, path: str) -> Element | None:
        """The first element along ``path``, or None."""
        found = self.findall(path)
        return found[0] if found else None

    def findtext(self, path: str) -> str | None:
        """The text of :meth:`find`'s element, or None when there is none."""
        found = self.find(path)
        return None if found is None else found.text


def _refuse(*_args: object) -> int:
    raise _Forbidden


def parse(document: bytes, what: str) -> Element:
    """The root element of ``document``, oned's ``what`` document.

    :class:`BadDocumentError` for a DOCTYPE or an entity declaration, and for anything
    expat rejects (an undefined entity included), with expat's one-line reason.
    """
    parser = ParserCreate()
    # Belt and braces: the DOCTYPE handler already stops the parse before any of these.
    parser.SetParamEntityParsing(XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.buffer_text = True  # one text callback per run of character data

    stack: list[Element] = []
    roots: list[Element] = []

    def start(tag: str, _attrs: object) -> None:
        elem = Element(tag)
        (stack[-1].children if stack else roots).append(elem)
        stack.append(elem)

    def end(_tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(document, True)
    except _Forbidden:
        raise BadDocumentError(
            f"The {what} document declares a DTD or entities, which oned never sends; refusing it."
        ) from None
    except ExpatError as exc:
        raise BadDocumentError(f"The {what} document is not well-formed XML ({exc}).") from None
    return roots[0]
