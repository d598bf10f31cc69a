"""Pure: deploy phases. Which pending migrations a run applies now and which it leaves for later,
and the schema expected while some are left.

A file with `-- release-runner: post-deploy` is a contract step (a drop, a rename's second half,
a tightening) that the previous release's code would break on. The decisions:
- **Release phase** (`migrate`): pre-deploy migrations are applied in order; a post-deploy one
  is deferred (recorded in `<history schema>.deferred` with this run's release id), unless an
  earlier release deferred it: the release phase of another release runs only after that
  earlier release's Machines were all replaced, so nothing needs the old shape. A retry of the
  same release keeps deferring. A deferral or a run without a release id never counts as
  another release: those wait for `--post-deploy`.
- **Post-deploy phase** (`migrate --post-deploy`): pending pre-deploy migrations first, in
  order, then every post-deploy one, in order.
- **A database with no history** (nothing applied, nothing deferred): everything is applied in
  order, post-deploy files included. No release runs against a schema that does not exist yet,
  and deferring would leave a new database in a shape no release was written for.

Expected schema: `snapshot` records, for each post-deploy migration, what it changed (each
object's definition before it ran, or null where it created the object). With migrations
deferred, the expected schema is the full snapshot with those changes undone, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from release_runner.core.errors import UsageError
from release_runner.core.history import DeferredRow
from release_runner.core.migrations import Migration
from release_runner.core.objects import Objects
from release_runner.core.plan import Plan, State
from release_runner.core.schema import Snapshot


class PhaseName(StrEnum):
    """The phase a run is in: the release phase (Fly's release_command, the old release still
    serving) or the post-deploy phase (every Machine runs the new release)."""

    RELEASE = "release"
    POST_DEPLOY = "post-deploy"


@dataclass(eq=False, repr=False)
class Phase:
    """What one run does: migrations to apply in order, post-deploy ones it leaves deferred
    (newly or still), and why each post-deploy migration it applies runs now."""

    name: PhaseName
    apply: list[Migration]
    defer: list[Migration]
    released: dict[str, str] = field(default_factory=dict)


def choose(plan: Plan, post_deploy: bool, release_id: str | None) -> Phase:
    waiting = [e for e in plan.entries if e.state in (State.PENDING, State.DEFERRED) and e.migration]
    pre = [e.migration for e in waiting if e.migration and not e.migration.directives.post_deploy]
    post = [e for e in waiting if e.migration and e.migration.directives.post_deploy]
    if post_deploy:
        why = "--post-deploy: every Machine runs the new release"
        return Phase(
            PhaseName.POST_DEPLOY,
            pre + [e.migration for e in post if e.migration],
            [],
            {e.version: why for e in post},
        )
    if plan.fresh:
        why = "the database has no migration history, so no running release depends on its shape"
        return Phase(
            PhaseName.RELEASE,
            [e.migration for e in waiting if e.migration],
            [],
            {e.version: why for e in post},
        )
    apply, defer, released = [], [], {}
    for entry in waiting:
        migration = entry.migration
        assert migration is not None
        earlier = entry.deferred.release_id if entry.deferred else None
        if not migration.directives.post_deploy:
            apply.append(migration)
        elif earlier and release_id and earlier != release_id:
            apply.append(migration)
            released[entry.version] = (
                f"deferred by release {earlier}; this is release {release_id}, so every Machine "
                "of the release that deferred it has been replaced"
            )
        else:
            defer.append(migration)
    return Phase(PhaseName.RELEASE, apply, defer, released)


def defer_reason(release_id: str | None, row: DeferredRow | None) -> str:
    """Why a post-deploy migration waits, and what applies it."""
    if release_id is None:
        return (
            "post-deploy migration; this run has no release id (--release-id, FLY_IMAGE_REF), so it "
            "waits for `release-runner migrate --post-deploy`"
        )
    first = row.release_id if row else release_id
    return (
        f"post-deploy migration, deferred by release {first or 'unknown'}; `release-runner migrate "
        "--post-deploy` applies it once every Machine runs the new release, or the release phase "
        "of a later release does"
    )


def delta(before: Objects, after: Objects) -> Objects:
    """What a migration changed: for each object it created, altered or dropped, its definition
    before (None where it did not exist)."""
    changed: Objects = {}
    for kind in sorted(set(before) | set(after)):
        old, new = before.get(kind, {}), after.get(kind, {})
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                changed.setdefault(kind, {})[name] = old.get(name)  # type: ignore[assignment]
    return changed


def undone(objects: Objects, changes: list[Objects]) -> Objects:
    """`objects` with each change undone, in the order given (newest first)."""
    result = {kind: dict(items) for kind, items in objects.items()}
    for change in changes:
        for kind, items in change.items():
            for name, definition in items.items():
                if definition is None:
                    result.get(kind, {}).pop(name, None)
                else:
                    result.setdefault(kind, {})[name] = definition
    return {kind: items for kind, items in result.items() if items}


def expected_with_deferred(snapshot: Snapshot, deferred: list[str], file: str) -> Objects:
    """The schema expected while the `deferred` versions are not applied; a UsageError when
    the snapshot does not say what one of them changes (taken before it was post-deploy)."""
    missing = [version for version in deferred if version not in snapshot.post_deploy]
    if missing:
        raise UsageError(
            f"{file} does not record what post-deploy migration(s) {', '.join(missing)} change, so "
            "the schema expected while they wait is unknown; run `release-runner snapshot` and "
            "commit the file",
            file=file,
        )
    newest_first = sorted(deferred, key=lambda version: (len(version), version), reverse=True)
    return undone(snapshot.objects, [snapshot.post_deploy[version] for version in newest_first])
