"""Read a migrations directory (native `sql/`, drizzle-kit or Prisma) into Migration values:
order, header directives, checksums; a Migration's statements come from statements.py.

Pure: reads files, never a database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from release_runner.core.errors import UsageError
from release_runner.core.settings import parse_duration
from release_runner.core.statements import (
    ALLOW_PARSE_ERROR,
    DIRECTIVE,
    LineIndex,
    Statement,
    rule_names,
    split_statements,
)

# ASCII digits only: `\d` would take full-width and Arabic-Indic digits for a version too.
NATIVE_NAME = re.compile(r"^([0-9]+)_([^/]+)\.sql$")
DRIZZLE_BREAKPOINT = "--> statement-breakpoint"


class SourceFormat(StrEnum):
    """Which tool's folder layout a migrations directory has."""

    NATIVE = "native"
    DRIZZLE = "drizzle"
    PRISMA = "prisma"


@dataclass(frozen=True)
class Directives:
    """What the leading `-- release-runner: ...` comment lines of a file ask for."""

    no_transaction: bool = False
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    allow: frozenset[str] = frozenset()
    post_deploy: bool = False
    """A contract step: deferred by the release phase, applied once the old release is gone."""


@dataclass(frozen=True, eq=False, repr=False)
class Migration:
    """One migration file. `version` is its identity in the history table; list order is the
    order of application."""

    version: str
    name: str
    path: Path
    text: str = field(repr=False)
    raw_sha256: str = field(repr=False)
    """SHA-256 of the bytes as stored: what Prisma and drizzle-kit record."""
    directives: Directives
    source_format: SourceFormat
    drizzle_when: int | None = None

    @cached_property
    def checksum(self) -> str:
        """SHA-256 of the text with BOM and CR line endings normalised away."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def label(self) -> str:
        return str(self.path)

    @cached_property
    def statements(self) -> list[Statement]:
        """The statements, split by the PostgreSQL parser (drizzle files first on breakpoints).
        Raises SqlSyntaxError on text the parser rejects, unless the file allows parse-error."""
        chunks = (
            self.text.split(DRIZZLE_BREAKPOINT) if self.source_format is SourceFormat.DRIZZLE else [self.text]
        )
        lines = LineIndex(self.text)
        statements: list[Statement] = []
        offset = 0
        for chunk in chunks:
            statements.extend(
                split_statements(chunk, offset, lines, ALLOW_PARSE_ERROR in self.directives.allow)
            )
            offset += len(chunk.encode()) + len(DRIZZLE_BREAKPOINT)
        return statements


def normalise_text(raw: bytes, path: Path) -> str:
    """Decode UTF-8 and drop a BOM and CR line endings, so checkouts on any OS agree."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8", file=str(path)
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")
    if nul != -1:
        # libpq and libpg_query both stop reading at a NUL: what follows it would silently
        # never reach the parser or the server (the history row and COMMIT included).
        line, column = line_and_column(text, nul)
        raise UsageError(
            f"{path}:{line}:{column}: contains a NUL byte, where PostgreSQL stops reading; "
            "everything after it would be dropped. Remove it (is this a binary file?)",
            file=str(path),
            line=line,
            column=column,
        )
    return text


def line_and_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def parse_directives(text: str, path: Path) -> Directives:
    """Read the header directives; an unknown one is an error naming its line."""
    if "release-runner:" not in text:
        return _NO_DIRECTIVES
    no_transaction = post_deploy = False
    lock_timeout = statement_timeout = None
    allow: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = DIRECTIVE.match(line)
        if not match:
            continue
        directive = match.group(1)
        key, _, value = directive.partition("=")
        try:
            if directive == "no-transaction":
                no_transaction = True
            elif directive == "post-deploy":
                post_deploy = True
            elif key == "lock-timeout" and value:
                lock_timeout = parse_duration(value)
            elif key == "statement-timeout" and value:
                statement_timeout = parse_duration(value)
            elif directive.startswith("allow "):
                allow.update(rule_names(directive))
            else:
                raise ValueError(f"unknown directive {directive!r}")
        except ValueError as error:
            raise UsageError(
                f"{path}:{number}: {error}; known directives: no-transaction, post-deploy, "
                "lock-timeout=5s, statement-timeout=1m, allow <rule>",
                file=str(path),
                line=number,
            ) from None
    return Directives(no_transaction, lock_timeout, statement_timeout, frozenset(allow), post_deploy)


_NO_DIRECTIVES = Directives()


def _load(path: Path, version: str, name: str, source_format: SourceFormat, **extra: Any) -> Migration:
    try:
        with open(path, "rb") as file:  # not Path.read_bytes: a thousand files, a tenth of the time
            raw = file.read()
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}", file=str(path)) from None
    text = normalise_text(raw, path)
    digest = hashlib.sha256(raw).hexdigest()
    del raw  # a data migration can be large: keep one copy of it, the text
    return Migration(version, name, path, text, digest, parse_directives(text, path), source_format, **extra)


@dataclass(frozen=True, eq=False, repr=False)
class MigrationSet:
    """A directory read in application order, with files it saw but will not apply."""

    source_format: SourceFormat
    migrations: list[Migration]
    ignored: list[Path]


def detect_formats(directory: Path) -> list[SourceFormat]:
    """Every format the directory can be read as: a drizzle-kit journal, a Prisma lock file or
    `*/migration.sql` folders, native `*.sql` files at the top (which a drizzle folder has too)."""
    found: list[SourceFormat] = []
    if (directory / "meta" / "_journal.json").exists():
        found.append(SourceFormat.DRIZZLE)
    if (directory / "migration_lock.toml").exists() or any(directory.glob("*/migration.sql")):
        found.append(SourceFormat.PRISMA)
    # Only files are native migrations: a Prisma migration's folder may be named `…_add.sql`.
    files = any(p.name.lower().endswith(".sql") and p.is_file() for p in directory.iterdir())
    if SourceFormat.DRIZZLE not in found and files:
        found.append(SourceFormat.NATIVE)
    return found


def read_directory(directory: Path, source_format: str = "auto") -> MigrationSet:
    """Read and order every migration in the given format (`auto`: detected). Misnamed files,
    duplicates, entries named like migrations that are not regular files, and a directory that
    reads as two formats raise UsageError."""
    if not directory.is_dir():
        raise UsageError(
            f"migrations directory {directory} does not exist or is not a directory; pass --migrations DIR",
            file=str(directory),
        )
    if source_format == "auto":
        formats = detect_formats(directory)
        if len(formats) > 1:
            raise UsageError(
                f"{directory} reads as both {formats[0]} and {formats[1]} migrations; say which with "
                f"--migrations-format {formats[0]} (or {formats[1]}), or move what does not belong",
                file=str(directory),
            )
        source_format = formats[0] if formats else SourceFormat.NATIVE
    reader = {
        SourceFormat.NATIVE: _read_native,
        SourceFormat.DRIZZLE: _read_drizzle,
        SourceFormat.PRISMA: _read_prisma,
    }
    result = reader[SourceFormat(source_format)](directory)
    if not result.migrations:
        raise UsageError(
            f"{directory}: no migrations found; native files are named <version>_<name>.sql",
            file=str(directory),
        )
    return result


def _read_native(directory: Path) -> MigrationSet:
    by_number: dict[int, Migration] = {}
    # scandir: the directory entry says what is a file without a stat() per migration.
    with os.scandir(directory) as scan:
        # A name with white space around `.sql` (`0002_b.sql `) looks like a migration too: it
        # is refused below by name, never skipped without a word.
        entries = sorted((e for e in scan if e.name.strip().lower().endswith(".sql")), key=lambda e: e.name)
    for entry in entries:
        path = directory / entry.name
        if not entry.is_file():
            raise _not_a_file(path)
        match = NATIVE_NAME.match(path.name)
        if not match:
            raise UsageError(
                f"{path}: not a migration file name; rename it to <version>_<name>.sql "
                "(version all digits, lower-case .sql), e.g. 0001_create_users.sql",
                file=str(path),
            )
        number = int(match.group(1))
        if number in by_number:
            raise UsageError(
                f"{path}: version {match.group(1)} is also used by {by_number[number].path}; "
                "give each migration its own version",
                file=str(path),
            )
        by_number[number] = _load(path, match.group(1), match.group(2), SourceFormat.NATIVE)
    return MigrationSet(SourceFormat.NATIVE, [by_number[n] for n in sorted(by_number)], [])


def _read_drizzle(directory: Path) -> MigrationSet:
    journal_path = directory / "meta" / "_journal.json"
    try:
        entries = json.loads(journal_path.read_text())["entries"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(
            f"{journal_path}: not a drizzle-kit journal ({error})", file=str(journal_path)
        ) from None
    migrations: list[Migration] = []
    seen: dict[str, Path] = {}
    for number, entry in enumerate(entries if isinstance(entries, list) else [None]):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("tag"), str)
            and isinstance(entry.get("idx"), int)
        ):
            raise UsageError(
                f'{journal_path}: entry {number} has no "tag" and "idx"; regenerate the journal with '
                "drizzle-kit, or restore it from version control",
                file=str(journal_path),
            )
    for entry in sorted(entries, key=lambda item: item["idx"]):
        tag = entry["tag"]
        path = directory / f"{tag}.sql"
        if path.exists() and not path.is_file():
            raise _not_a_file(path)
        if not path.is_file():
            raise UsageError(
                f"{journal_path}: entry {tag!r} has no file {path.name}; restore it or "
                "regenerate the journal",
                file=str(path),
            )
        version, _, name = tag.partition("_")
        if version in seen:
            raise UsageError(f"{path}: version {version} is also used by {seen[version]}")
        seen[version] = path
        migrations.append(
            _load(path, version, name or tag, SourceFormat.DRIZZLE, drizzle_when=entry.get("when"))
        )
    listed = {m.path.name for m in migrations}
    ignored = sorted(p for p in directory.glob("*.sql") if p.name not in listed)
    return MigrationSet(SourceFormat.DRIZZLE, migrations, ignored)


def _read_prisma(directory: Path) -> MigrationSet:
    lock_file = directory / "migration_lock.toml"
    if lock_file.is_file():
        provider = re.search(r'^\s*provider\s*=\s*"([^"]*)"', lock_file.read_text(errors="replace"), re.M)
        if provider and provider.group(1) not in ("postgresql", "postgres"):
            raise UsageError(
                f"{lock_file}: these Prisma migrations are for {provider.group(1)!r}, not PostgreSQL; "
                "point --migrations at the PostgreSQL migrations folder",
                file=str(lock_file),
            )
    migrations: list[Migration] = []
    # Prisma orders migration folders by name, byte-wise, whatever the name looks like.
    for folder in sorted((p for p in directory.iterdir() if p.is_dir()), key=lambda p: p.name):
        path = folder / "migration.sql"
        if path.exists() and not path.is_file():
            raise _not_a_file(path)
        if not path.is_file():
            raise UsageError(
                f"{folder}: a Prisma migration folder without migration.sql; add it or remove the folder",
                file=str(folder),
            )
        match = re.match(r"^\d+_(.+)$", folder.name)
        migrations.append(
            _load(path, folder.name, match.group(1) if match else folder.name, SourceFormat.PRISMA)
        )
    return MigrationSet(SourceFormat.PRISMA, migrations, [])


def _not_a_file(path: Path) -> UsageError:
    return UsageError(
        f"{path}: named like a migration but not a regular file (a directory, a dangling "
        "symlink, a FIFO?); make it a file, or remove or rename it",
        file=str(path),
    )
