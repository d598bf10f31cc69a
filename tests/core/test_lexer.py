"""core/lexer.py: the reader of files too large for the parser cuts them exactly where the real
parser does, on generated cases of every kind of token that may hold a semicolon, and on every
file of the corpus; and what it cuts is parsed back to the same statements."""

from __future__ import annotations

import pytest

from release_runner.core import lexer
from release_runner.core.statements import LineIndex, SqlSyntaxError, _split_large, split_statements
from tests.conftest import CORPUS

CASES = {
    "dollar quote holding $$": "INSERT INTO t VALUES ($q$x$$;y$q$);",
    "dollar quote with _ tag holding a DO": (
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $_$ SELECT 'DO $$ BEGIN; END $$;' $_$;"
    ),
    "typed literal then a constant": "SELECT name'a\\' , 'b;c';",
    "E string with escapes": "SELECT E'it\\'s; fine', e'\\\\';",
    "identifier ending in E before a quote": "SELECT 1 AS namE, 'x;y';",
    "nested comment": "SELECT 1 /* a /* b */ ; still a comment */ ;",
    "line comment": "SELECT 1; -- a comment; with a semicolon\nSELECT 2;",
    "identifiers holding $": "CREATE TABLE a$b$ (c$d$ int);\nSELECT c$d$ FROM a$b$;",
    "quoted identifier with ;": 'CREATE TABLE "a;b" ("c""d;" int);',
    "BEGIN ATOMIC body": (
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nSELECT 3;"
    ),
    "procedure with CASE in its body": (
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC "
        "INSERT INTO t SELECT CASE WHEN true THEN 1 END; END;\nSELECT 4;"
    ),
    "unicode and parameters": "SELECT 'é;ü', $1 FROM \"ñ;\";\nSELECT $$;$$;",
    "no final semicolon": "SELECT 1;\nSELECT ';'",
}


def _same_as_the_parser(text: str) -> None:
    lines = LineIndex(text)
    expected = [(s.text, s.line, s.column) for s in split_statements(text, 0, lines)]
    assert [(s.text, s.line, s.column) for s in _split_large(text, 0, lines, False)] == expected


@pytest.mark.parametrize("name", CASES)
def test_the_large_file_reader_cuts_where_the_parser_does(name: str) -> None:
    _same_as_the_parser(CASES[name])


def test_every_corpus_file_is_cut_where_the_parser_cuts_it() -> None:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent")
    files = sorted(CORPUS.rglob("*.sql"))
    assert len(files) > 100
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            split_statements(text, 0, LineIndex(text))
        except SqlSyntaxError:  # a file the parser refuses is not a case of this test
            continue
        _same_as_the_parser(text)


def test_lead_skips_space_and_nested_comments() -> None:
    text = "  -- a\n /* x /* y */ z */\nINSERT"
    assert text[lexer.lead(text) :] == "INSERT"
