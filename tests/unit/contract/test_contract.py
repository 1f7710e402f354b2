"""The run's contract (`disbatch/contract/`): the formats its parts rely on across processes, each spelled only there,
and that a reader needs nothing else of the driver to find them."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from disbatch.contract import RunFiles, stem_of
from disbatch.contract.control import RetireContext, RetireEngine, format_command, parse_command
from disbatch.contract.json_events import ENTRY_TYPES, SCHEMA_VERSION, EngineLeftEntry, Entry, read_entry, write_entry
from disbatch.contract.kvs_keys import CONTROL_KEY, STATUS_KEY, TASK_SOURCE_SIGN_IN
from disbatch.contract.launch_line import LaunchLine

PACKAGE = Path(__file__).resolve().parents[3] / 'disbatch'


def test_every_run_file_is_named_from_the_stem() -> None:
    files = RunFiles('/w/Tasks_disBatch_261202120000_042')
    assert files.job_id == 'Tasks_disBatch_261202120000_042'
    assert files.status == '/w/Tasks_disBatch_261202120000_042_status.txt'
    assert files.kvsinfo.endswith('_kvsinfo.txt') and files.dbutil.endswith('_dbUtil.sh')
    assert files.context_log('J7') == '/w/Tasks_disBatch_261202120000_042_J7.context.log'
    assert files.engine_log_pattern.format(context='SSH0', host='node1') == files.engine_log('SSH0', 'node1')
    assert stem_of(files.status) == files.stem


@pytest.mark.parametrize('reader', ['monitor', 'web', 'report', 'notify', 'contexts'])
def test_readers_of_a_run_never_import_the_driver(reader: str) -> None:
    for path in sorted((PACKAGE / reader).glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name == 'disbatch.driver' or name.startswith('disbatch.driver.') for name in names), path


RUN_FILE_NAME = re.compile(
    r'_(kvsinfo\.txt|dbUtil\.sh|url\b|status\.txt|driver\.log|events\.jsonl|resubmit\.sh|engine_wrap\.log)|\.context\.log'
)


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (prose may name a file; code must ask `RunFiles`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_outside_the_contract(pattern: re.Pattern[str]) -> list[str]:
    """Every string constant of the package outside `contract/` (docstrings aside) that `pattern` finds in."""
    spelled = []
    for path in sorted(PACKAGE.rglob('*.py')):
        if path.is_relative_to(PACKAGE / 'contract'):
            continue
        tree = ast.parse(path.read_text())
        prose = docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and id(node) not in prose else None
            if isinstance(text, (str, bytes)) and pattern.search(text if isinstance(text, str) else text.decode()):
                spelled.append(f'{path.relative_to(PACKAGE)}:{node.lineno}: {text!r}')
    return spelled


def test_no_run_file_name_is_spelled_outside_the_contract() -> None:
    assert spelled_outside_the_contract(RUN_FILE_NAME) == []


def test_no_kvs_key_is_spelled_outside_the_contract() -> None:
    keys = (STATUS_KEY, CONTROL_KEY, *TASK_SOURCE_SIGN_IN)
    assert spelled_outside_the_contract(re.compile('|'.join(re.escape(key) for key in keys))) == []


def test_the_task_source_signs_in_with_the_reference_keys() -> None:
    assert TASK_SOURCE_SIGN_IN == (
        'task source name',
        'task source done task',
        'task source result key',
        'task source task key',
    )
    assert (STATUS_KEY, CONTROL_KEY) == ('DisBatch status', 'DisBatch control')


KEY = 'k' * 40  # a CURVE key in Z85 is 40 characters


def test_the_launch_line_reads_back_what_the_context_writes() -> None:
    line = LaunchLine('s3cret', KEY, 'node1:5555')
    assert line.format() == f's3cret {KEY} node1:5555'
    assert LaunchLine.parse(line.format() + '\n') == line


@pytest.mark.parametrize('text', ['', 's3cret', f's3cret {KEY}', 's3cret short node1:5555', f's {KEY} node1:1 more'])
def test_a_line_that_is_not_a_launch_line_is_refused(text: str) -> None:
    assert LaunchLine.parse(text) is None


def test_control_commands_are_the_reference_json_and_read_back() -> None:
    assert json.loads(format_command(RetireEngine(3))) == {'retire engine': 3}
    assert json.loads(format_command(RetireContext('J123'))) == {'retire context': 'J123'}
    for command in (RetireEngine(3), RetireContext('J123')):
        assert parse_command(format_command(command)) == command
    assert parse_command(b'{"retire engine": "4"}') == RetireEngine(4)  # as a shell's kvsstcp put may spell it


@pytest.mark.parametrize('text', ['', '[]', '{"stop": 1}', '{"retire engine": null}', '{"retire engine": "x"}'])
def test_what_is_not_a_control_command_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_command(text)


def test_no_control_command_is_spelled_outside_the_contract() -> None:
    assert spelled_outside_the_contract(re.compile(r'\bretire (engine|context)\b')) == []


SCHEMA = json.loads((PACKAGE.parent / 'docs' / 'events.schema.json').read_text())


@pytest.mark.parametrize('kind', ENTRY_TYPES, ids=lambda kind: kind.NAME)
def test_the_events_schema_describes_each_event_as_written(kind: type[Entry]) -> None:
    described = SCHEMA['$defs'][kind.NAME]
    written = ['event', *(field.name for field in dataclasses.fields(kind))]
    always = ['event', *(field.name for field in dataclasses.fields(kind) if not field.metadata)]
    assert set(described['properties']) == set(written)
    assert set(described['required']) == set(always)
    assert described['properties']['event'] == {'const': kind.NAME}


def test_the_schema_lists_every_event_and_its_version() -> None:
    assert {ref['$ref'].rsplit('/', 1)[1] for ref in SCHEMA['oneOf']} == {kind.NAME for kind in ENTRY_TYPES}
    assert SCHEMA['version'] == SCHEMA_VERSION == SCHEMA['$defs']['run_start']['properties']['schema_version']['const']


def test_an_event_reads_back_as_written() -> None:
    event = EngineLeftEntry(time=12.5, engine=3, host='node1', lost=True)
    line = write_entry(event)
    assert line == '{"event":"engine_left","time":12.5,"engine":3,"host":"node1","lost":true}'
    assert read_entry(line) == event
    assert read_entry('{"event":"engine_left","time":1,"engine":3,"host":"n","lost":false,"later":1}') is not None
    assert read_entry('{"event":"a_later_event","time":1}') is None


@pytest.mark.parametrize('line', ['[]', '{"time": 1}', '{"event":"engine_left","time":1,"engine":3}'])
def test_a_line_that_is_no_event_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        read_entry(line)


def test_no_event_name_is_spelled_outside_the_contract() -> None:
    names = '|'.join(kind.NAME for kind in ENTRY_TYPES)
    assert spelled_outside_the_contract(re.compile(rf'^({names})$')) == []
