"""Pure: walking a parse tree (libpg_query's JSON, as dicts and lists) with a stack, never by
recursion: a tree may be deeper than Python's recursion limit (a long UNION ALL seed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every dict of a parse tree, each once (in no particular order)."""
    pending = [tree]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            yield item
            pending.extend(item.values())
