"""The expected schema: the snapshot value (objects.py turns a catalog read into its objects),
and the snapshot file, written and read. drift.py lists the differences between two such values.

Pure: the catalog is fetched by db/catalog.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from release_runner.core.errors import UsageError
from release_runner.core.objects import DEFAULT_PRIVILEGES, Objects

FORMAT = "release-runner/schema-snapshot"
# 2: definitions are rendered with search_path = pg_catalog (every name schema-qualified),
# whatever the session's search_path; a version 1 file is refused with "regenerate it".
# 3: column-level GRANTs, a column's SET STORAGE, owners and USAGE of types, ALTER DEFAULT
# PRIVILEGES and statistics objects are compared; an older file would show every enum as changed.
FORMAT_VERSION = 3


_PRIVILEGED = ("owner", "acl")


def without_privileges(objects: Objects) -> Objects:
    """The same objects with owners and privileges left out (`--ignore-privileges`, for teams
    whose roles differ between environments): default privileges are nothing else."""
    return {
        kind: {
            name: {k: v for k, v in attrs.items() if k not in _PRIVILEGED} for name, attrs in items.items()
        }
        for kind, items in objects.items()
        if kind != DEFAULT_PRIVILEGES
    }


@dataclass(frozen=True, eq=False, repr=False)
class Snapshot:
    """An expected schema, and the PostgreSQL major version it was taken on (definitions of
    views and defaults render differently from one major version to the next)."""

    objects: Objects
    server_major: int | None
    post_deploy: dict[str, Objects] = field(default_factory=dict)
    """Per post-deploy migration, the definitions it changed as they were before it ran."""


def dump(snapshot: Snapshot) -> str:
    """The snapshot file's text: sorted, two-space indented, one object per block, no OIDs or
    timestamps, so that the same schema always gives the same bytes."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "server_major": snapshot.server_major,
        "objects": snapshot.objects,
        # Only when there are post-deploy migrations: other snapshots stay byte for byte as before.
        **({"post_deploy": snapshot.post_deploy} if snapshot.post_deploy else {}),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: Path) -> Snapshot | None:
    """Read a snapshot file; None when it does not exist."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{path}: not a readable snapshot ({error}); regenerate it with `release-runner snapshot`",
            file=str(path),
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"{path}: not a release-runner snapshot; regenerate it", file=str(path))
    if document.get("format_version") != FORMAT_VERSION:
        raise UsageError(
            f"{path}: snapshot format {document.get('format_version')} is not supported by this "
            f"version (expects {FORMAT_VERSION}); regenerate it with `release-runner snapshot`",
            file=str(path),
        )
    return Snapshot(document["objects"], document.get("server_major"), document.get("post_deploy", {}))
