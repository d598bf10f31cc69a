"""Pure: a migration's text cut into statements with the real PostgreSQL parser (libpg_query,
through pglast), each with its file position, parse tree and the rules an `allow` comment
right above it switches off; and the small readers of parse trees (node, names as written)
that preflight, the release-phase rules and lock-ahead share. A text over 1 MiB (a data load)
is first cut by a lexer, since the parse tree of a 50 MB INSERT takes gigabytes. pglast is
imported only when statements are needed, so commands with nothing pending never load it."""

from __future__ import annotations

import bisect
import json
import re
from array import array
from dataclasses import dataclass
from typing import Any

from release_runner.core import lexer, mask

DIRECTIVE = re.compile(r"^\s*--\s*release-runner:\s*(.*?)\s*$")
# Rules a file may switch off; `parse-error` lets a statement the bundled parser rejects run.
ALLOW_PARSE_ERROR = "parse-error"


@dataclass(frozen=True, eq=False, repr=False)
class Statement:
    """One SQL statement as it stands in its file: text, 1-based line and column of its first
    token, the parse tree (None when the parser was told to stand aside) and rules allowed
    for it by a `-- release-runner: allow ...` comment right above it."""

    text: str
    line: int
    column: int
    node: dict[str, Any] | None = None
    allow: frozenset[str] = frozenset()
    unread: str = ""
    """Why its parse tree was not read (over 1 MiB, nested too deeply): then `node` holds at
    most the kind its first word says, with an empty body."""

    @property
    def kind(self) -> str:
        """The parse-tree node name, e.g. `IndexStmt`; `?` when unparsed."""
        return next(iter(self.node)) if self.node else "?"

    @property
    def head(self) -> str:
        """The statement's first words, to name it in messages, with its constants masked."""
        return shortened(mask.statement(self.text), 60)

    def position(self, char_offset: int) -> tuple[int, int]:
        """File line and column of a 0-based character offset into `text`."""
        before = self.text[:char_offset]
        newlines = before.count("\n")
        if newlines == 0:
            return self.line, self.column + char_offset
        return self.line + newlines, char_offset - before.rfind("\n")


def shortened(text: str, width: int) -> str:
    """Text on one line (its runs of whitespace one space), cut to `width` characters with
    `...` at the end where it is longer: how a statement, a value or a status line is shown."""
    words = " ".join(text.split())
    return words if len(words) <= width else words[: max(width - 3, 0)] + "..."


def node(statement: Statement) -> tuple[str, dict[str, Any]]:
    """The statement's parse-tree node name and body; `("?", {})` when it was not parsed."""
    if not statement.node:
        return "?", {}
    kind, body = next(iter(statement.node.items()))
    return kind, body


def relation_parts(relation: dict[str, Any] | None) -> tuple[str, ...] | None:
    """A RangeVar's name as written: (schema, name) or (name,); None without one."""
    if not relation or "relname" not in relation:
        return None
    schema = relation.get("schemaname")
    return (str(schema), str(relation["relname"])) if schema else (str(relation["relname"]),)


def relation_name(relation: dict[str, Any] | None) -> str | None:
    """A RangeVar's name as written, dotted: "schema.name" or "name"."""
    parts = relation_parts(relation)
    return ".".join(parts) if parts else None


def name_parts(items: list[dict[str, Any]]) -> tuple[str, ...]:
    """A qualified name given as a list of String nodes (a type's, a dropped object's)."""
    return tuple(
        str(item["String"].get("sval")) for item in items if isinstance(item, dict) and "String" in item
    )


def dotted_name(items: list[dict[str, Any]]) -> str:
    """name_parts() as one "schema.name" string."""
    return ".".join(name_parts(items))


def quote_ident(name: str) -> str:
    """One identifier in double quotes, its own quotes doubled: names here are already
    case-folded by the parser or read from the catalog, so quoting keeps them exact."""
    return '"' + name.replace('"', '""') + '"'


def sets_search_path(statement: Statement) -> bool:
    """True for `SET [LOCAL] search_path`/`SET SCHEMA` and a `set_config('search_path', ...)`:
    after it, an unqualified name in the file may mean another object than it does now."""
    if statement.kind == "VariableSetStmt":
        assert statement.node is not None
        return bool(statement.node["VariableSetStmt"].get("name") == "search_path")
    lowered = statement.text.lower()
    return "set_config" in lowered and "search_path" in lowered


class SqlSyntaxError(Exception):
    """The parser rejected a file: message and 1-based line/column in that file."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class LineIndex:
    """Maps byte offsets of a file's UTF-8 encoding to 1-based line and character column."""

    def __init__(self, text: str) -> None:
        self.data = text.encode()
        self.starts = array("q", [0])  # a million lines of a data load: 8 MB, not 36
        newline = self.data.find(b"\n")
        while newline != -1:
            self.starts.append(newline + 1)
            newline = self.data.find(b"\n", newline + 1)

    def locate(self, byte_offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, byte_offset)
        start = self.starts[line - 1]
        return line, len(self.data[start:byte_offset].decode(errors="replace")) + 1


def _allowed_rules(gap: str) -> frozenset[str]:
    """Rules named by `-- release-runner: allow ...` comments in the text between statements."""
    rules: set[str] = set()
    for line in gap.splitlines():
        match = DIRECTIVE.match(line)
        if match and match.group(1).startswith("allow "):
            rules.update(rule_names(match.group(1)))
    return frozenset(rules)


def rule_names(directive: str) -> list[str]:
    return [rule for rule in re.split(r"[\s,]+", directive.removeprefix("allow ")) if rule]


def split_statements(
    chunk: str, chunk_offset: int, lines: LineIndex, allow_parse_error: bool = False
) -> list[Statement]:
    """Split one chunk of a file with libpg_query; `chunk_offset` is its byte offset in the file.
    Raises SqlSyntaxError where the parser rejects it, unless `allow_parse_error` (the file's
    `allow parse-error`) has the scanner alone cut it. A statement nested too deeply for its
    tree to be read (a 1,000-row UNION ALL, a 500-term `||` chain) is kept unread, never a crash."""
    from pglast import parser

    if len(chunk) > LARGE:
        return _split_large(chunk, chunk_offset, lines, allow_parse_error)
    try:
        parsed = json.loads(parser.parse_sql_json(chunk))["stmts"]
        spans: list[Span] = [
            (item.get("stmt_location", 0), item.get("stmt_len"), item["stmt"], "") for item in parsed
        ]
    except (RecursionError, parser.ParseError) as error:
        if _too_deep(error):
            spans = _one_by_one(chunk, chunk_offset, lines, allow_parse_error)
        elif allow_parse_error:
            spans = [(start, end - start, None, "") for start, end in _scan_spans(chunk)]
        else:
            raise _syntax_error(error, chunk, chunk_offset, lines) from None
    return _statements(chunk, chunk_offset, lines, spans)


_TOO_DEEP = "stack depth limit exceeded"  # libpg_query's own limit on nesting
UNREAD_DEEP = "nested too deeply for the runner to read its parse tree"
Span = tuple[int, "int | None", "dict[str, Any] | None", str]
"""A statement's byte offset and length in its chunk (None: to the end), its parse tree, and
why it has none to read (empty when it has one or the parser was told to stand aside)."""


def _too_deep(error: Exception) -> bool:
    """Python's recursion limit reading the tree, or libpg_query's own limit on nesting."""
    return isinstance(error, RecursionError) or error.args[0] == _TOO_DEEP


def _syntax_error(error: Exception, chunk: str, chunk_offset: int, lines: LineIndex) -> SqlSyntaxError:
    # libpg_query reports the error position in characters, not bytes.
    message, index = error.args
    line, column = lines.locate(chunk_offset + len(chunk[: index or 0].encode()))
    return SqlSyntaxError(str(message), line, column)


def _one_by_one(chunk: str, chunk_offset: int, lines: LineIndex, allow_parse_error: bool) -> list[Span]:
    """Spans of a chunk holding a statement too deep to read: cut by the scanner, each statement
    parsed alone; the deep ones keep only the kind their first word says."""
    from pglast import parser

    data = chunk.encode()
    spans: list[Span] = []
    for start, end in _scan_spans(chunk):
        text = data[start:end].decode()
        try:
            (item,) = json.loads(parser.parse_sql_json(text))["stmts"]
            spans.append((start, end - start, item["stmt"], ""))
        except (RecursionError, parser.ParseError) as error:
            if _too_deep(error):
                spans.append((start, end - start, _first_word_kind(text), UNREAD_DEEP))
            elif allow_parse_error:
                spans.append((start, end - start, None, ""))
            else:
                raise _syntax_error(error, text, chunk_offset + start, lines) from None
    return spans


def _statements(chunk: str, chunk_offset: int, lines: LineIndex, spans: list[Span]) -> list[Statement]:
    """Statements of a chunk from their spans: text, file position, and the `allow` comments
    between one statement and the one before it."""
    data = chunk.encode()
    statements = []
    previous_end = 0
    for start, length, tree, unread in spans:
        end = len(data) if length is None else start + length
        text = data[start:end].decode().strip()
        start += len(data[start:end]) - len(data[start:end].lstrip())
        line, column = lines.locate(chunk_offset + start)
        allow = _allowed_rules(data[previous_end:start].decode())
        statements.append(Statement(text, line, column, tree, allow, unread))
        previous_end = end
    return statements


# A chunk larger than this (a data load) is first cut at its top-level semicolons by lexer.py:
# the parser's tree of a 50 MB INSERT takes gigabytes. Each statement under the limit is then
# parsed as usual; one over it (an INSERT of many rows, say) runs unparsed, its syntax checked
# by the server inside its transaction, and only its kind read from its first word.
LARGE = 1 << 20


_FIRST_WORD_KINDS = {
    "INSERT": "InsertStmt",
    "UPDATE": "UpdateStmt",
    "DELETE": "DeleteStmt",
    "MERGE": "MergeStmt",
    "SELECT": "SelectStmt",
}


def _first_word_kind(text: str) -> dict[str, Any] | None:
    """The node of a statement whose tree is not read: its kind, as its first word says, with
    an empty body (None when the word does not say)."""
    word = re.match(r"[A-Za-z]+", text)
    kind = _FIRST_WORD_KINDS.get(word.group(0).upper() if word else "")
    return {kind: {}} if kind else None


def _split_large(chunk: str, chunk_offset: int, lines: LineIndex, allow_parse_error: bool) -> list[Statement]:
    """A large chunk cut where lexer.py says statements end. A piece that opens a BEGIN ATOMIC
    body and does not parse yet runs on to the next cut, as psql reads it."""
    cuts = lexer.semicolons(chunk)
    ends = cuts if cuts and cuts[-1] == len(chunk) else [*cuts, len(chunk)]
    statements: list[Statement] = []
    start, byte_offset = 0, chunk_offset
    for end in ends:
        piece = chunk[start:end]
        if len(piece) <= LARGE:
            try:
                statements.extend(split_statements(piece, byte_offset, lines, allow_parse_error))
            except SqlSyntaxError:
                if end != ends[-1] and lexer.opens_atomic_body(piece):
                    continue  # the body's own semicolon: keep the start, take the next piece too
                raise
        else:
            skipped = lexer.lead(piece)
            text = piece[skipped:].rstrip().removesuffix(";").rstrip()
            line, column = lines.locate(byte_offset + len(piece[:skipped].encode()))
            statements.append(Statement(text, line, column, _first_word_kind(text), unread="over 1 MiB"))
        start, byte_offset = end, byte_offset + len(piece.encode())
    return statements


def _scan_spans(chunk: str) -> list[tuple[int, int]]:
    """Statement byte spans from the scanner alone (no grammar), for files whose statements the
    parser rejects on purpose: split on top-level semicolons, skip comment-only spans."""
    from pglast import parser

    spans: list[tuple[int, int]] = []
    start: int | None = None
    for token in parser.scan(chunk):
        if token.name == "ASCII_59":
            if start is not None:
                spans.append((start, token.start))
            start = None
        elif token.name not in ("SQL_COMMENT", "C_COMMENT") and start is None:
            start = token.start
    if start is not None:
        spans.append((start, len(chunk.encode())))
    return spans
