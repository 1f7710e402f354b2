"""The run's contract (`disbatch/contract.py`): the file names its readers rely on, and that they need nothing else
of the driver to find them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from disbatch.contract import RunFiles, stem_of

PACKAGE = Path(__file__).resolve().parents[2] / 'disbatch'


def test_every_run_file_is_named_from_the_stem() -> None:
    files = RunFiles('/w/Tasks_disBatch_261202120000_042')
    assert files.job_id == 'Tasks_disBatch_261202120000_042'
    assert files.status == '/w/Tasks_disBatch_261202120000_042_status.txt'
    assert files.kvsinfo.endswith('_kvsinfo.txt') and files.dbutil.endswith('_dbUtil.sh')
    assert files.context_log('J7') == '/w/Tasks_disBatch_261202120000_042_J7.context.log'
    assert files.engine_log_pattern.format(context='SSH0', host='node1') == files.engine_log('SSH0', 'node1')
    assert stem_of(files.status) == files.stem


@pytest.mark.parametrize('reader', ['monitor', 'web', 'notify', 'contexts'])
def test_readers_of_a_run_never_import_the_driver(reader: str) -> None:
    for path in sorted((PACKAGE / reader).glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name == 'disbatch.driver' or name.startswith('disbatch.driver.') for name in names), path
