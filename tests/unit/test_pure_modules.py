"""The pure cores stay pure: they, and every module of the package they import, import no `zmq`, `subprocess`,
`socket` or `curses` and read no clock (time arrives in their events), so their tests are plain calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / 'disbatch'
PURE = [
    'taskfile',
    'driver/core/scheduler.py',
    'engine/core.py',
    'results/status_line.py',
    'results/record.py',
    'monitor/model.py',
    'contract',
]
FORBIDDEN_IMPORTS = {'zmq', 'subprocess', 'socket', 'curses'}
CLOCKS = {
    ('time', 'time'),
    ('time', 'time_ns'),
    ('time', 'monotonic'),
    ('time', 'monotonic_ns'),
    ('time', 'perf_counter'),
    ('time', 'perf_counter_ns'),
    ('datetime', 'now'),
    ('datetime', 'utcnow'),
    ('datetime', 'today'),
    ('date', 'today'),
}


def module_path(name: str) -> Path | None:
    """The file of the package's module `name` (disbatch.x.y), or None for a module outside the package."""
    if name != 'disbatch' and not name.startswith('disbatch.'):
        return None
    base = PACKAGE.parent.joinpath(*name.split('.'))
    for path in (base.with_suffix('.py'), base / '__init__.py'):
        if path.exists():
            return path
    return None


def imports(tree: ast.Module, *, top_level: bool = False) -> set[str]:
    """The modules `tree` imports; `top_level`: only those imported when it is (not in a function, which imports
    when called: `disbatch/__init__.py` imports the API only when asked for `DisBatcher`)."""
    names = set()
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)  # `from disbatch.x import module`
    return names


def clock_reads(tree: ast.AST) -> list[str]:
    """`time.time()`, `datetime.now()`, ... and `time.localtime()` without an argument (which reads the clock)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = (
                owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ''
            )
            if (owner_name, node.func.attr) in CLOCKS or (
                owner_name == 'time' and node.func.attr in ('localtime', 'gmtime', 'ctime') and not node.args
            ):
                found.append(f'{owner_name}.{node.func.attr}() at line {node.lineno}')
    return found


def closure(start: Path) -> dict[Path, set[str]]:
    """Every module of the package that importing `start` imports, directly or not, with all the names each
    imports (in its functions too)."""
    seen: dict[Path, set[str]] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        tree = ast.parse(path.read_text())
        seen[path] = imports(tree)
        todo.extend(found for name in imports(tree, top_level=True) if (found := module_path(name)) is not None)
        if path.name != '__init__.py':  # importing a module imports its packages first
            todo.extend(parent / '__init__.py' for parent in path.parents if parent.is_relative_to(PACKAGE))
    return seen


def pure_files() -> list[Path]:
    files = []
    for place in PURE:
        path = PACKAGE / place
        files.extend(sorted(path.glob('*.py')) if path.is_dir() else [path])
    return files


@pytest.mark.parametrize('start', pure_files(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_pure_module_imports_no_io_and_reads_no_clock(start: Path) -> None:
    for path, names in closure(start).items():
        where = path.relative_to(PACKAGE)
        assert not {name.split('.')[0] for name in names} & FORBIDDEN_IMPORTS, f'{where} (imported by {start.name})'
        assert clock_reads(ast.parse(path.read_text())) == [], f'{where} (imported by {start.name})'
