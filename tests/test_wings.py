"""The layout holds: the README's drawing of the wings is the code's imports, arrow for arrow;
imports point down only, there are no circles, each third-party package stays in its wing,
and no module or function outgrows its size."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "release_runner"
# Where each library may be imported: the design's rule of the wings.
LIBRARIES = {
    "psycopg": {"db"},
    "click": {"cli"},
    "structlog": {"cli", "run"},
    "tenacity": {"run"},
    "pglast": {"core"},
}
# The one import of another wing made lazily, inside a function, for a measured start-up cost
# (see cli/main.py `_commands`): loaded through importlib, so it is named here.
LAZY = {("cli", "release_runner.commands")}


def _wing(module: str) -> str:
    """`release_runner.run.session` -> `run`; top-level modules are their own wing."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, whether the import is inside a function) for every import."""
    tree = ast.parse(path.read_text())
    inside: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node in inside
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node in inside
            if node.module.startswith("release_runner"):
                for alias in node.names:
                    yield f"{node.module}.{alias.name}", node in inside


def _release_runner_modules() -> set[str]:
    return {name for name, _ in _modules()}


def _edges(lazy_too: bool = False) -> dict[str, set[str]]:
    """Module -> the release_runner modules it imports (at module level; `lazy_too`: inside
    functions as well, and through importlib)."""
    known = _release_runner_modules()
    edges: dict[str, set[str]] = {}
    for name, path in _modules():
        targets = {
            imported for imported, lazy in _imports(path) if imported in known and (lazy_too or not lazy)
        }
        if lazy_too:
            targets.update(re.findall(r'import_module\("([\w.]+)"\)', path.read_text()))
        edges[name] = targets - {name, "release_runner"}
    return edges


def _drawn() -> dict[str, set[str]]:
    """The arrows of the README's drawing: `wing -> wing, wing` lines in its Development section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Development", 1)[1].split("\n## ", 1)[0]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    arrows: dict[str, set[str]] = {}
    for line in block.splitlines():
        match = re.match(r"\s*(\S+?)(?:\.py|/)?\s+->\s+(.*?)\s*(?:#.*)?$", line)
        if match:
            targets = {t.strip().rstrip("/").removesuffix(".py") for t in match.group(2).split(",")}
            arrows[match.group(1)] = targets - {"nothing"}
    return arrows


def test_the_readme_drawing_is_the_imports() -> None:
    """Every arrow drawn is an import, and every import between wings is drawn."""
    actual: dict[str, set[str]] = {}
    for module, targets in _edges(lazy_too=True).items():
        if module != "release_runner":  # the package's __init__: its version, nothing else
            wing = _wing(module)
            actual.setdefault(wing, set()).update(_wing(t) for t in targets if _wing(t) != wing)
    assert _drawn() == actual


def test_no_circles_between_modules() -> None:
    """Module-level imports form no cycle, in any wing."""
    edges = _edges()
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges.get(module, ()):
            assert state.get(target) != 1, " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in edges:
        if module not in state:
            visit(module, [])


def test_no_function_imports_another_wing_but_the_measured_one() -> None:
    """Imports sit at the top of the modules that use them, so every edge is visible; the one
    lazy import is named in LAZY and made through importlib with a comment saying why."""
    known = _release_runner_modules()
    for name, path in _modules():
        for imported, lazy in _imports(path):
            if (
                lazy
                and imported in known
                and _wing(imported) != _wing(name)
                and name != "release_runner.__main__"
            ):
                raise AssertionError(f"{name} imports {imported} inside a function")
        for target in re.findall(r'import_module\("([\w.]+)"\)', path.read_text()):
            assert (_wing(name), target) in LAZY, f"{name} loads {target} lazily"


def test_each_library_stays_in_its_wing() -> None:
    """psycopg only in db/, click only in cli/, structlog in cli/ and run/, tenacity in run/;
    core/ imports none of psycopg, click, structlog or tenacity."""
    for name, path in _modules():
        for imported, _ in _imports(path):
            library = imported.split(".")[0]
            if library in LIBRARIES:
                assert _wing(name) in LIBRARIES[library], f"{name} imports {imported}"


def test_modules_and_functions_stay_small() -> None:
    """About 400 lines a module and 60 a function, for code, tests and benchmarks alike."""
    too_long = []
    for root in ("release_runner", "tests", "bench"):
        for path in sorted((ROOT / root).rglob("*.py")):
            text = path.read_text()
            if text.count("\n") > 420:
                too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > 60:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []
