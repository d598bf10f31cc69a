"""Keeping literal values out of the output: what a migration, a row or another session's query
holds (a password in CREATE ROLE, a token in an UPDATE, a key in a unique violation's DETAIL) is
never printed unless `--log-sql-values` asks for it. Statements keep their shape (libpg_query's
normalisation turns each constant into $1, $2, ...); a server message has the failing
statement's constants cut out of it; DETAIL's key and row values are masked.
"""

from __future__ import annotations

import re
from typing import Any

from release_runner.core.trees import nodes

_shown = False


def show_values(shown: bool) -> None:
    """`--log-sql-values`: print literal values as they are (local debugging only)."""
    global _shown
    _shown = shown


def values_shown() -> bool:
    return _shown


# What a query cut short (pg_stat_activity keeps 200 characters here) may hold when the parser
# cannot normalise it: quoted strings, possibly unterminated, dollar-quoted bodies, numbers.
_LITERALS = re.compile(
    r"""[EeBbXxNnUu]?'(?:[^']|'')*(?:'|$)|\$([A-Za-z_]\w*)?\$.*?(?:\$\1\$|$)|(?<![\w$])\d+(?:\.\d+)?""",
    re.DOTALL,
)
# A row's values in a DETAIL: "Key (email)=(a@b.c) already exists.", "Key (t)=(x) is
# duplicated.", "Failing row contains (1, secret).": from the opening parenthesis to the last
# closing one of the message, since a value may itself hold "). ".
_ROW_VALUES = re.compile(r"(\)=\(|row contains \()(.*)(\))", re.DOTALL)
# Double-quoted text in a server message names an object when one of these words stands right
# before it (`relation "users"`, `column "a" of relation "t"`, `syntax error at or near "x"`);
# any other quoted text is a value (`invalid input syntax for type integer: "x"`, `Token "x"
# is invalid.`, `unexpected spaces found in "x"`) and is masked.
_OBJECT_WORDS = re.compile(
    r"\b(?:relation|table|column|constraint|index|type|function|procedure|routine|schema|role|"
    r"database|sequence|view|trigger|extension|policy|publication|subscription|tablespace|"
    r"collation|operator|rule|domain|cursor|savepoint|statement|parameter|language|server|"
    r"attribute|aggregate|near|user|variable|portal|event trigger|family|class|method|option|"
    r"server at|host name)s? $",
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def statement(text: str) -> str:
    """The statement with each constant replaced by $n, as libpg_query normalises it."""
    if _shown:
        return text
    from pglast import parser

    try:
        return str(parser.normalize(text))
    except parser.ParseError:
        return _LITERALS.sub("?", text)


def constants(node: Any) -> list[str]:
    """The literal strings of a parse tree (constants, and option values such as a role's
    PASSWORD), longest first: what to cut from a server message about that statement."""
    found: set[str] = set()
    for item in nodes(node):
        literal = item.get("A_Const", {}).get("sval") or item.get("DefElem", {}).get("arg", {}).get("String")
        if isinstance(literal, dict) and isinstance(literal.get("sval"), str):
            found.add(literal["sval"])
    return sorted((value for value in found if len(value) >= 3), key=len, reverse=True)


def literals(text: str) -> list[str]:
    """The quoted strings of SQL text that does not parse (a line with a syntax error)."""
    found = {m.group(0).split("'", 1)[1].rstrip("'") for m in _LITERALS.finditer(text) if "'" in m.group(0)}
    return sorted((value for value in found if len(value) >= 3), key=len, reverse=True)


def message(text: str | None, values: list[str]) -> str | None:
    """A server message (primary, detail or hint) as data: the statement's constants cut out,
    a row's values masked, and every double-quoted text masked unless a word that names an
    object kind stands before it. Server text is data until proven otherwise."""
    if text is None or _shown:
        return text
    for value in values:
        text = text.replace(value, "[value]")
    text = _ROW_VALUES.sub(lambda m: f"{m.group(1)}[values]{m.group(3)}", text)
    return _QUOTED.sub(
        lambda m: m.group(0) if _OBJECT_WORDS.search(text[: m.start()][-40:]) else "[value]", text
    )


def raised(context: str | None) -> bool:
    """Whether an error comes from a RAISE in PL/pgSQL (its CONTEXT says `at RAISE`): its text
    is the author's and may carry values from rows anywhere in it, quoted or not."""
    return bool(context) and "at RAISE" in str(context)


RAISED = "[the text of a RAISE in the migration: not shown, it may hold values; --log-sql-values shows it]"
