"""Results of tasks: the status record, its line format, output snippets, the status file and resume."""

from __future__ import annotations

from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.report import HEADER, flags, format_line, is_header, parse_line
from disbatch.results.resume import ResumeIndex
from disbatch.results.snippet import OutputCapture
from disbatch.results.status_file import StatusFileWriter, read_status_file

__all__ = [
    'HEADER',
    'OutputCapture',
    'RecordKind',
    'ResumeIndex',
    'StatusFileWriter',
    'StatusRecord',
    'flags',
    'format_line',
    'is_header',
    'parse_line',
    'read_status_file',
]
