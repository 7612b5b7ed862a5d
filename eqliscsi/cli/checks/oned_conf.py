"""A reader for the parts of ``oned.conf`` a storage driver is registered in.

oned.conf is a flat list of ``NAME = value`` and ``NAME = [ key = "value", ... ]``
vector attributes with ``#`` comments.  Driver registration (opennebula-driver.md §2.6)
lives in three vectors: ``TM_MAD`` and ``DATASTORE_MAD`` (whose ``arguments`` carry the
driver list after ``-d``) and one ``TM_MAD_CONF`` per transfer driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["OnedConf", "driver_list", "parse_oned_conf"]

_VECTOR_RE = re.compile(r"(?s)\b([A-Z_][A-Z0-9_]*)\s*=\s*\[(.*?)\]")
_PAIR_RE = re.compile(r'(?s)([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"([^"]*)"|([^,\s\]]+))')
_SCALAR_RE = re.compile(r'(?m)^\s*([A-Z_][A-Z0-9_]*)\s*=\s*"([^"]*)"\s*$')


@dataclass(frozen=True, slots=True)
class OnedConf:
    """oned.conf read as its vector and scalar attributes."""

    vectors: tuple[tuple[str, Mapping[str, str]], ...]
    scalars: Mapping[str, str]

    def all(self, name: str) -> list[Mapping[str, str]]:
        return [v for n, v in self.vectors if n == name]

    def first(self, name: str) -> Mapping[str, str] | None:
        found = self.all(name)
        return found[0] if found else None

    def tm_mad_conf(self, driver: str) -> Mapping[str, str] | None:
        for v in self.all("TM_MAD_CONF"):
            if v.get("NAME", "").strip() == driver:
                return v
        return None


def _strip_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        in_quote = False
        cut = len(line)
        for i, ch in enumerate(line):
            if ch == '"':
                in_quote = not in_quote
            elif ch == "#" and not in_quote:
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)


def parse_oned_conf(text: str) -> OnedConf:
    body = _strip_comments(text)
    vectors = []
    for m in _VECTOR_RE.finditer(body):
        pairs = {
            p[1].upper(): (p[2] if p[2] is not None else p[3]) for p in _PAIR_RE.finditer(m[2])
        }
        vectors.append((m[1], pairs))
    scalars = dict(_SCALAR_RE.findall(_VECTOR_RE.sub("", body)))
    return OnedConf(tuple(vectors), scalars)


def driver_list(arguments: str, flag: str = "-d") -> tuple[str, ...]:
    """The comma-separated list after ``flag`` in a MAD's ``arguments``."""
    words = arguments.split()
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return tuple(d.strip() for d in words[i + 1].split(",") if d.strip())
        if word.startswith(flag) and len(word) > len(flag) and word[len(flag)] != "-":
            return tuple(d.strip() for d in word[len(flag) :].split(",") if d.strip())
    return ()
