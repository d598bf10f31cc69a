"""Pure: where a chunk of SQL too large for the parser (a data load over 1 MiB) ends its
statements, read as PostgreSQL's own lexer (scan.l, standard_conforming_strings on) reads it:

- '…' constants with '' doubled (also B'…', X'…', N'…', U&'…'); E'…' with backslash escapes,
  but only where the E starts a token (`name'a\\'` is the name, then the constant 'a\\');
- "…" identifiers with "" doubled;
- dollar quotes, opened only where `$` starts a token (`a$b$` is one identifier) and closed
  only by the same tag (`$q$x$$;y$q$` is one constant);
- -- comments, and /* */ comments, which nest.

Semicolons inside any of these are not statement ends. A `CREATE FUNCTION … BEGIN ATOMIC …
END` body holds semicolons of its own: statements.py joins its pieces until the parser accepts
them (`opens_atomic_body`). tests/core/test_lexer.py holds this reader to the real parser's
cuts, on generated cases and every corpus file."""

from __future__ import annotations

import functools
import re

_ATOMIC = re.compile(r"\bBEGIN\s+ATOMIC\b", re.IGNORECASE)
_CREATE_ROUTINE = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b", re.IGNORECASE)
_COMMENT_EDGE = re.compile(r"/\*|\*/")
_SPACE = re.compile(r"(?:\s+|--[^\n]*)+")


@functools.cache
def _tokens() -> re.Pattern[str]:
    """The tokens that may hold a semicolon, and the semicolon (compiled on first use: most
    runs never see a large file)."""
    word = r"A-Za-z_\x80-\U0010FFFF"  # what may start an identifier; digits and $ may follow
    starts = rf"(?<![{word}0-9$])"  # a token starts here: no identifier runs into it
    return re.compile(
        rf"""(?P<semicolon>;)
          | {starts}[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z)
          | '(?:[^']|'')*(?:'|\Z)
          | "(?:[^"]|"")*(?:"|\Z)
          | --[^\n]*
          | (?P<comment>/\*)
          | {starts}(?P<dollar>\$(?:[{word}][{word}0-9]*)?\$)(?:.*?(?P=dollar)|.*\Z)""",
        re.VERBOSE | re.DOTALL,
    )


def _comment_end(text: str, after_opening: int) -> int:
    """The end of a /* comment whose opening ends at `after_opening`, nested ones included."""
    depth = 1
    for edge in _COMMENT_EDGE.finditer(text, after_opening):
        depth += 1 if edge.group() == "/*" else -1
        if depth == 0:
            return edge.end()
    return len(text)


def semicolons(text: str) -> list[int]:
    """The offset just past each semicolon of `text` that ends a statement."""
    cuts: list[int] = []
    position = 0
    while True:
        for token in _tokens().finditer(text, position):
            if token.lastgroup == "semicolon":
                cuts.append(token.end())
            elif token.lastgroup == "comment":
                position = _comment_end(text, token.end())
                break  # go on after the whole comment: a regular expression cannot count nesting
        else:
            return cuts


def lead(text: str) -> int:
    """Where the first token of `text` starts, after whitespace and comments (nested too)."""
    position = 0
    while True:
        space = _SPACE.match(text, position)
        if space:
            position = space.end()
        elif text.startswith("/*", position):
            position = _comment_end(text, position + 2)
        else:
            return position


def opens_atomic_body(text: str) -> bool:
    """A CREATE FUNCTION or PROCEDURE with a BEGIN ATOMIC body: its first semicolon may be
    inside the body, not its end."""
    start = lead(text)
    return bool(_CREATE_ROUTINE.match(text, start)) and bool(_ATOMIC.search(text, start))
