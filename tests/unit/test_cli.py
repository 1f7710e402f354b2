"""The command line's parsing (cli.py): one `-r` with several status files, the task source, `--retry N`."""

from __future__ import annotations

import pytest

from disbatch.cli import build_parser, parse_arguments


@pytest.mark.parametrize(
    ('argv', 'taskfile', 'resume_from'),
    [
        (['-r', 'a', 'b', 'Tasks'], 'Tasks', ['a', 'b']),  # the Readme's -r Tasks_disBatch_*_status.txt Tasks
        (['-r', 'a', '-R', 'Tasks'], 'Tasks', ['a']),
        (['Tasks', '-r', 'a', 'b'], 'Tasks', ['a', 'b']),
        (['-r', 'a', '-r', 'b', 'c', 'Tasks', '-s', 'localhost:2'], 'Tasks', ['a', 'b', 'c']),
        (['-ra', 'Tasks'], 'Tasks', ['a']),
    ],
)
def test_one_dash_r_takes_several_status_files_and_the_last_word_is_the_task_file(
    argv: list[str], taskfile: str, resume_from: list[str]
) -> None:
    arguments = parse_arguments(argv)
    assert (arguments.taskfile, arguments.resume_from) == (taskfile, resume_from)


def test_a_task_stream_keeps_every_word_after_dash_r_as_a_status_file() -> None:
    arguments = parse_arguments(['--taskcommand', 'make-tasks', '-r', 'a', 'b'])
    assert (arguments.taskfile, arguments.resume_from) == (None, ['a', 'b'])


@pytest.mark.parametrize(
    ('argv', 'said'),
    [
        (['-s', 'localhost:2', '--retry', '2', 'Tasks'], 'give --retries 2'),
        (['--retry', '3'], 'give --retries 3'),
        (['-s', 'localhost:2'], 'give a task file'),
        (['--taskcommand', 'x', 'Tasks'], 'give one source of tasks'),
    ],
)
def test_a_wrong_command_line_is_one_line_naming_what_to_give(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert said in error and len(error.strip().splitlines()) == 1, error


def test_the_help_shows_the_everyday_flags_first_then_the_groups_and_examples() -> None:
    text = build_parser().format_help()
    groups = ['everyday:', 'batch systems and contexts:', 'watching a run:', 'results and logs:',
              'task streams, the KVS and other reference features:', 'examples:']  # fmt: skip
    positions = [text.index(group) for group in groups]
    assert positions == sorted(positions)
    everyday = text[positions[0] : positions[1]]
    for flag in (
        '-s HOST',
        '-t N',
        '-c N',
        '-r STATUSFILE',
        '-R, --retry',
        '-f, --fail-fast',
        '--retries',
        '--timeout',
    ):
        assert flag in everyday, flag
    assert 'disbatch report' in text and 'disbatch submit' in text


def test_a_bare_resubmit_before_the_task_file_takes_its_default_count() -> None:
    arguments = parse_arguments(['--resubmit', 'Tasks'])  # the Readme's `disbatch --resubmit Tasks`
    assert (arguments.taskfile, arguments.resubmit) == ('Tasks', 10)
    assert parse_arguments(['--resubmit', '3', 'Tasks']).resubmit == 3
