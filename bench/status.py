"""Checking a disbatch run by its status file: the right number of task lines, every return code 0.

Reads the 15-column, tab-separated `<stem>_status.txt` (field 7 = return code); barrier lines (flag B or C) and
per-engine lines (4th flag P) are not tasks of the task file and are left out of the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RETURN_CODE_FIELD = 6  # 0-based index of field 7


@dataclass(frozen=True)
class StatusCheck:
    tasks: int  # task lines found
    failed: int  # task lines with a return code other than 0
    problem: str  # '' when the file was found and every line parsed

    def ok(self, expected: int) -> bool:
        return not self.problem and self.tasks == expected and self.failed == 0

    def describe(self, expected: int) -> str:
        if self.problem:
            return self.problem
        return f'{self.tasks} of {expected} task lines, {self.failed} with rc != 0'


def find_status_file(output_directory: Path) -> Path | None:
    """The one `*_status.txt` of a run's output directory (its stem may carry a timestamp); None if absent."""
    found = sorted(output_directory.glob('*_status.txt'))
    return found[0] if len(found) == 1 else None


def check_status(output_directory: Path) -> StatusCheck:
    path = find_status_file(output_directory)
    if path is None:
        names = sorted(p.name for p in output_directory.glob('*_status.txt'))
        return StatusCheck(0, 0, f'expected one *_status.txt in the output directory, found {names}')
    tasks = failed = 0
    for number, line in enumerate(path.read_text(encoding='utf-8', errors='replace').splitlines(), start=1):
        fields = line.split('\t')
        if len(fields) < 15:
            return StatusCheck(tasks, failed, f'{path.name}:{number}: {len(fields)} fields, expected 15')
        flags = fields[0]
        if flags[:1] in ('B', 'C') or flags[3:4] == 'P':
            continue
        try:
            return_code = int(fields[RETURN_CODE_FIELD])
        except ValueError:
            return StatusCheck(tasks, failed, f'{path.name}:{number}: return code {fields[6]!r} is not an integer')
        tasks += 1
        failed += return_code != 0
    return StatusCheck(tasks, failed, '')
