"""Tests of disbatch.taskfile.parser: one per grammar rule, the errors and warnings, streaming, and properties."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.errors import TaskFileError
from disbatch.taskfile import NO_REPEAT, Barrier, Item, PerEngineTask, Phase, Task, TaskFileParser, parse_stream

EXAMPLES = Path(__file__).resolve().parents[3] / 'exampleTaskFiles'


def parse(text: bytes, source: str = 'Tasks') -> list[Item]:
    return list(parse_stream(text.splitlines(keepends=True), source))


def parse_with_warnings(text: bytes, source: str = 'Tasks') -> tuple[list[Item], list[str]]:
    warnings: list[str] = []
    items = list(parse_stream(text.splitlines(keepends=True), source, warnings.append))
    return items, warnings


def error_of(text: bytes, source: str = 'Tasks') -> str:
    with pytest.raises(TaskFileError) as caught:
        parse(text, source)
    return str(caught.value)


# --- every directive together --------------------------------------------------------------------------------------

EVERY_DIRECTIVE = b"""\
# a comment
#DISBATCH PREFIX cd work ;\x20
#DISBATCH SUFFIX  >> out.log 2>&1\x20
#DISBATCH PERENGINE START echo start one
#DISBATCH PERENGINE START echo start two
#DISBATCH PERENGINE STOP echo stop

echo first
exit 13
#DISBATCH BARRIER
#DISBATCH REPEAT 1 start 39 echo thirty-nine
#DISBATCH REPEAT 0 start 1 echo never
#DISBATCH BARRIER mykey
#DISBATCH REPEAT 3 start 50 step 2 echo $DISBATCH_REPEAT_INDEX
#DISBATCH BARRIER CHECK
#DISBATCH BARRIER CHECK otherkey
echo last
"""


def test_every_directive_gives_the_reference_ids_lines_and_indices() -> None:
    prefix, suffix = 'cd work ; ', ' >> out.log 2>&1 '

    def command(text: str) -> str:
        return prefix + text + suffix

    assert parse(EVERY_DIRECTIVE) == [
        PerEngineTask(Phase.START, 0, 4, command('echo start one')),
        PerEngineTask(Phase.START, 1, 5, command('echo start two')),
        PerEngineTask(Phase.STOP, 0, 6, command('echo stop')),
        Task(0, 8, NO_REPEAT, command('echo first')),
        Task(1, 9, NO_REPEAT, command('exit 13')),
        Barrier(2, 10, False, None, '#DISBATCH BARRIER'),
        Task(3, 11, 39, command('echo thirty-nine')),
        Barrier(4, 13, False, 'mykey', '#DISBATCH BARRIER mykey'),
        Task(5, 14, 50, command('echo $DISBATCH_REPEAT_INDEX')),
        Task(6, 14, 52, command('echo $DISBATCH_REPEAT_INDEX')),
        Task(7, 14, 54, command('echo $DISBATCH_REPEAT_INDEX')),
        Barrier(8, 15, True, None, '#DISBATCH BARRIER CHECK'),
        Barrier(9, 16, True, 'otherkey', '#DISBATCH BARRIER CHECK otherkey'),
        Task(10, 17, NO_REPEAT, command('echo last')),
    ]


# --- comments, blank lines, plain tasks ----------------------------------------------------------------------------


def test_comments_and_blank_lines_are_skipped_but_consume_line_numbers() -> None:
    items = parse(b'# one\n\n   \n\t# indented comment\n\x0c\necho a\n')
    assert items == [Task(0, 6, NO_REPEAT, 'echo a')]


def test_a_plain_line_is_kept_verbatim_with_leading_tabs_and_trailing_spaces() -> None:
    assert parse(b'\techo a  \n') == [Task(0, 1, NO_REPEAT, '\techo a  ')]


def test_a_hash_that_is_not_first_is_a_task() -> None:
    assert parse(b'echo a # not a comment\n') == [Task(0, 1, NO_REPEAT, 'echo a # not a comment')]


def test_backslash_does_not_continue_a_line() -> None:
    assert parse(b'echo a \\\necho b\n') == [Task(0, 1, NO_REPEAT, 'echo a \\'), Task(1, 2, NO_REPEAT, 'echo b')]


def test_invalid_utf8_survives_the_round_trip() -> None:
    (task,) = parse(b'echo \xff\xfe caf\xc3\xa9\n')
    assert isinstance(task, Task)
    assert task.command.encode('utf-8', 'surrogateescape') == b'echo \xff\xfe caf\xc3\xa9'


def test_empty_input_gives_nothing() -> None:
    assert parse(b'') == []
    assert parse(b'# only a comment\n\n') == []


# --- line endings ---------------------------------------------------------------------------------------------------


def test_crlf_line_endings_are_stripped() -> None:
    items = parse(b'echo a\r\n#DISBATCH PREFIX x \r\necho b\r\n#DISBATCH BARRIER k\r\n')
    assert items == [
        Task(0, 1, NO_REPEAT, 'echo a'),
        Task(1, 3, NO_REPEAT, 'x echo b'),
        Barrier(2, 4, False, 'k', '#DISBATCH BARRIER k'),
    ]


def test_a_lone_cr_splits_the_item_and_the_parts_share_its_line_number() -> None:
    items = list(parse_stream([b'echo a\recho b\n', b'echo c\n'], 'Tasks'))
    assert items == [Task(0, 1, NO_REPEAT, 'echo a'), Task(1, 1, NO_REPEAT, 'echo b'), Task(2, 2, NO_REPEAT, 'echo c')]


def test_a_kvs_item_with_several_lines_numbers_them_all_alike() -> None:
    parser = TaskFileParser('STREAM')
    assert parser.feed(b'#DISBATCH PREFIX p \necho a\necho b', 7) == [
        Task(0, 7, NO_REPEAT, 'p echo a'),
        Task(1, 7, NO_REPEAT, 'p echo b'),
    ]


def test_an_item_without_a_line_ending_is_a_whole_line() -> None:
    assert list(parse_stream([b'echo a', b'echo b'], '<stdin>')) == [
        Task(0, 1, NO_REPEAT, 'echo a'),
        Task(1, 2, NO_REPEAT, 'echo b'),
    ]


def test_other_unicode_line_breaks_do_not_split() -> None:
    command = 'echo a\x85b\u2028c'
    assert parse(command.encode() + b'\n') == [Task(0, 1, NO_REPEAT, command)]


def test_a_300_kb_line_is_one_task() -> None:
    line = b'echo ' + b'x' * 320_000
    assert parse(line + b'\n') == [Task(0, 1, NO_REPEAT, line.decode())]


# --- the marker ----------------------------------------------------------------------------------------------------


def test_keywords_are_case_insensitive() -> None:
    items = parse(b'#DISBATCH prefix p \n#DISBATCH Barrier check k\n#DISBATCH repeat 1 START 4 Step 2 x\necho a\n')
    assert items == [
        Barrier(0, 2, True, 'k', '#DISBATCH Barrier check k'),
        Task(1, 3, 4, 'p x'),
        Task(2, 4, NO_REPEAT, 'p echo a'),
    ]


@pytest.mark.parametrize('line', [b'#disbatch BARRIER', b'#DisBatch prefix p ', b'#disbatch is great'])
def test_a_marker_not_in_capitals_is_a_comment_with_a_warning(line: bytes) -> None:
    items, warnings = parse_with_warnings(b'echo a\n' + line + b'\n')
    assert items == [Task(0, 1, NO_REPEAT, 'echo a')]
    assert warnings == [
        'Tasks:2: looks like a directive but the marker is not #DISBATCH in capitals; treated as a comment'
    ]


@pytest.mark.parametrize('line', [b'  #DISBATCH BARRIER', b'\t#disbatch REPEAT 3 echo a', b' #DISBATCHFOO'])
def test_an_indented_directive_is_a_comment_with_a_warning(line: bytes) -> None:
    items, warnings = parse_with_warnings(b'echo a\n' + line + b'\n')
    assert items == [Task(0, 1, NO_REPEAT, 'echo a')]
    assert warnings == ['Tasks:2: looks like a directive but is indented; treated as a comment']


def test_parser_warnings_are_collected_for_the_caller_to_drain() -> None:
    parser = TaskFileParser('f')
    assert parser.feed(b'  #DISBATCH BARRIER\n', 3) == []
    assert parser.warnings == ['f:3: looks like a directive but is indented; treated as a comment']


def test_a_marker_glued_to_a_word_is_an_unknown_directive() -> None:
    assert error_of(b'echo a\n#DISBATCHFOO bar\n') == 'Tasks:2: unknown directive #DISBATCHFOO'


@pytest.mark.parametrize('line', [b'#DISBATCH', b'#DISBATCH   ', b'#DISBATCH\t'])
def test_a_bare_marker_is_an_error(line: bytes) -> None:
    assert error_of(line + b'\n') == 'Tasks:1: missing directive keyword after #DISBATCH'


def test_an_unknown_keyword_is_an_error_naming_it() -> None:
    assert error_of(b'\n\n#DISBATCH FROBNICATE now\n') == 'Tasks:3: unknown directive #DISBATCH FROBNICATE'


def test_a_keyword_with_a_tail_is_unknown() -> None:
    assert error_of(b'#DISBATCH PREFIXED x\n') == 'Tasks:1: unknown directive #DISBATCH PREFIXED'


# --- PREFIX and SUFFIX ---------------------------------------------------------------------------------------------


def test_prefix_and_suffix_keep_everything_after_one_space() -> None:
    parser = TaskFileParser('f')
    parser.feed(b'#DISBATCH PREFIX   a  b  \n', 1)
    parser.feed(b'#DISBATCH SUFFIX ; c \n', 2)
    assert (parser.prefix, parser.suffix) == ('  a  b  ', '; c ')
    assert parser.feed(b'x\n', 3) == [Task(0, 3, NO_REPEAT, '  a  b  x; c ')]


def test_a_new_prefix_replaces_the_old_one() -> None:
    assert parse(b'#DISBATCH PREFIX a \n#DISBATCH PREFIX b \nx\n') == [Task(0, 3, NO_REPEAT, 'b x')]


@pytest.mark.parametrize('clear', [b'#DISBATCH SUFFIX\n', b'#DISBATCH SUFFIX \n', b'#DISBATCH SUFFIX\r\n'])
def test_a_bare_suffix_clears_it(clear: bytes) -> None:
    items = parse(b'#DISBATCH SUFFIX  s\nx\n' + clear + b'y\n')
    assert items == [Task(0, 2, NO_REPEAT, 'x s'), Task(1, 4, NO_REPEAT, 'y')]


def test_a_bare_prefix_clears_it() -> None:
    parser = TaskFileParser('f')
    parser.feed(b'#DISBATCH PREFIX p ', 1)
    parser.feed(b'#DISBATCH PREFIX', 2)
    assert parser.prefix == ''


def test_prefix_lines_do_not_close_the_perengine_block() -> None:
    items = parse(b'#DISBATCH PREFIX p \n#DISBATCH PERENGINE START a\n')
    assert items == [PerEngineTask(Phase.START, 0, 2, 'p a')]


# --- PERENGINE -----------------------------------------------------------------------------------------------------


def test_perengine_phases_count_from_zero_apart_from_tasks() -> None:
    items = parse(
        b'#DISBATCH PERENGINE START a\n#DISBATCH PERENGINE STOP b\n#DISBATCH PERENGINE stop c\n'
        b'#DISBATCH PERENGINE start d\nx\n'
    )
    assert items == [
        PerEngineTask(Phase.START, 0, 1, 'a'),
        PerEngineTask(Phase.STOP, 0, 2, 'b'),
        PerEngineTask(Phase.STOP, 1, 3, 'c'),
        PerEngineTask(Phase.START, 1, 4, 'd'),
        Task(0, 5, NO_REPEAT, 'x'),
    ]


def test_perengine_keeps_the_command_after_the_separating_spaces() -> None:
    assert parse(b'#DISBATCH PERENGINE STOP   echo  a ; \n') == [PerEngineTask(Phase.STOP, 0, 1, 'echo  a ; ')]


@pytest.mark.parametrize('before', [b'echo a', b'#DISBATCH BARRIER', b'#DISBATCH REPEAT 2 x', b'#DISBATCH REPEAT 0 x'])
def test_perengine_after_any_task_is_an_error(before: bytes) -> None:
    text = b'#DISBATCH PERENGINE START ok\n' + before + b'\n# c\n#DISBATCH PERENGINE STOP late\n'
    assert error_of(text, 'f.txt') == 'f.txt:4: PERENGINE tasks must come before all other tasks'


@pytest.mark.parametrize(
    'line',
    [b'#DISBATCH PERENGINE', b'#DISBATCH PERENGINE START', b'#DISBATCH PERENGINE STOP   ', b'#DISBATCH PERENGINE GO x'],
)
def test_perengine_without_phase_or_command_is_an_error(line: bytes) -> None:
    assert error_of(line + b'\n') == 'Tasks:1: malformed PERENGINE: expected PERENGINE START|STOP <command>'


# --- REPEAT --------------------------------------------------------------------------------------------------------


def test_repeat_defaults_to_start_zero_step_one() -> None:
    assert parse(b'#DISBATCH REPEAT 3 echo a\n') == [Task(i, 1, i, 'echo a') for i in range(3)]


def test_repeat_start_and_step() -> None:
    items = parse(b'x\n#DISBATCH REPEAT 3 start 100 step 3 y\n')
    assert items == [Task(0, 1, NO_REPEAT, 'x')] + [Task(1 + i, 2, 100 + 3 * i, 'y') for i in range(3)]


def test_repeat_step_alone() -> None:
    assert parse(b'#DISBATCH REPEAT 2 step 5 y\n') == [Task(0, 1, 0, 'y'), Task(1, 1, 5, 'y')]


def test_repeat_without_a_command_runs_prefix_and_suffix() -> None:
    items = parse(b'#DISBATCH PREFIX echo \n#DISBATCH SUFFIX  done\n#DISBATCH REPEAT 2 start 7\n')
    assert items == [Task(0, 3, 7, 'echo  done'), Task(1, 3, 8, 'echo  done')]


def test_repeat_zero_yields_nothing_and_takes_no_id() -> None:
    assert parse(b'#DISBATCH REPEAT 0 start 1 x\ny\n') == [Task(0, 2, NO_REPEAT, 'y')]


def test_repeat_with_a_negative_step_makes_it_the_command_and_warns() -> None:
    items, warnings = parse_with_warnings(b'\n#DISBATCH REPEAT 2 step -1\n')
    assert items == [Task(0, 2, 0, 'step -1'), Task(1, 2, 1, 'step -1')]
    assert len(warnings) == 1
    assert warnings[0].startswith("Tasks:2: REPEAT command starts with 'step'")


def test_repeat_options_out_of_order_become_the_command() -> None:
    items, warnings = parse_with_warnings(b'#DISBATCH REPEAT 1 step 2 start 5\n')
    assert items == [Task(0, 1, 0, 'start 5')]
    assert warnings[0].startswith("Tasks:1: REPEAT command starts with 'start'")


def test_repeat_with_an_ordinary_command_does_not_warn() -> None:
    assert parse_with_warnings(b'#DISBATCH REPEAT 2 startup.sh\n') == (
        [Task(0, 1, 0, 'startup.sh'), Task(1, 1, 1, 'startup.sh')],
        [],
    )


@pytest.mark.parametrize(
    'line',
    [
        b'#DISBATCH REPEAT',
        b'#DISBATCH REPEAT   ',
        b'#DISBATCH REPEAT x',
        b'#DISBATCH REPEAT -1 x',
        b'#DISBATCH REPEAT 3x',
    ],
)
def test_repeat_without_a_count_is_an_error(line: bytes) -> None:
    message = error_of(line + b'\n')
    assert message.startswith('Tasks:1: malformed REPEAT: ')
    assert line.decode() in message


def test_repeat_count_must_be_ascii_digits() -> None:
    assert error_of('#DISBATCH REPEAT \u0663 x\n'.encode()).startswith('Tasks:1: malformed REPEAT')


# --- BARRIER -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('line', 'check', 'key'),
    [
        ('#DISBATCH BARRIER', False, None),
        ('#DISBATCH BARRIER CHECK', True, None),
        ('#DISBATCH BARRIER some/key.1', False, 'some/key.1'),
        ('#DISBATCH BARRIER CHECK k', True, 'k'),
        ('#DISBATCH barrier Check   k  ', True, 'k'),
        ('#DISBATCH\tBARRIER\tk', False, 'k'),
    ],
)
def test_barrier_forms(line: str, check: bool, key: str | None) -> None:
    assert parse(b'x\n' + line.encode() + b'\r\n') == [Task(0, 1, NO_REPEAT, 'x'), Barrier(1, 2, check, key, line)]


@pytest.mark.parametrize('line', [b'#DISBATCH BARRIER a b', b'#DISBATCH BARRIER CHECK a b'])
def test_barrier_with_extra_words_is_an_error(line: bytes) -> None:
    assert error_of(line + b'\n').startswith('Tasks:1: malformed BARRIER: ')


# --- streaming -----------------------------------------------------------------------------------------------------


def counting(lines: Iterator[bytes], consumed: list[int]) -> Iterator[bytes]:
    for line in lines:
        consumed[0] += 1
        yield line


def test_parse_stream_never_reads_ahead() -> None:
    consumed = [0]
    items = parse_stream(counting(iter([b'echo a\n', b'echo b\n', b'echo c\n']), consumed), '<stdin>')
    assert next(items) == Task(0, 1, NO_REPEAT, 'echo a')
    assert consumed == [1]
    assert next(items) == Task(1, 2, NO_REPEAT, 'echo b')
    assert consumed == [2]


def test_parse_stream_of_a_million_lines_is_lazy() -> None:
    consumed = [0]
    lines = (b'echo %d\n' % number for number in range(1_000_000))
    started = time.monotonic()
    first = list(itertools.islice(parse_stream(counting(lines, consumed), '<stdin>'), 5))
    assert [item.task_id for item in first] == [0, 1, 2, 3, 4]
    assert consumed == [5]
    assert time.monotonic() - started < 1


def test_repeat_a_million_is_lazy() -> None:
    started = time.monotonic()
    items = parse_stream(iter([b'#DISBATCH REPEAT 1000000 start 1 x\n', b'y\n']), 'f')
    assert list(itertools.islice(items, 3)) == [Task(0, 1, 1, 'x'), Task(1, 1, 2, 'x'), Task(2, 1, 3, 'x')]
    assert time.monotonic() - started < 1


def test_feed_iter_takes_the_ids_of_a_repeat_at_once() -> None:
    parser = TaskFileParser('f')
    repeat = parser.feed_iter(b'#DISBATCH REPEAT 1000000 x', 1)
    assert parser.feed(b'y', 2) == [Task(1_000_000, 2, NO_REPEAT, 'y')]
    assert next(repeat) == Task(0, 1, 0, 'x')


def test_an_error_is_raised_by_the_line_that_has_it_after_earlier_items() -> None:
    items = parse_stream(iter([b'echo a\n', b'#DISBATCH NOPE\n']), 'f')
    assert next(items) == Task(0, 1, NO_REPEAT, 'echo a')
    with pytest.raises(TaskFileError) as caught:
        next(items)
    assert (caught.value.source, caught.value.line_number) == ('f', 2)


def test_warnings_without_a_callback_are_dropped() -> None:
    assert list(parse_stream([b' #DISBATCH BARRIER\n'], 'f')) == []


# --- the example task files ----------------------------------------------------------------------------------------


def parse_file(name: str) -> list[Item]:
    path = EXAMPLES / name
    with path.open('rb') as lines:
        return list(parse_stream(lines, str(path)))


def test_example_files_parse() -> None:
    for name in ['Tasks', 'DBtasksOneBadOneLeaky', 'barrierCheckFail', 'DCPTTasks', 'WayTooLongTask']:
        assert parse_file(name), name
    assert parse_file('emptyTaskFile') == []


def test_example_way_too_long_task_is_one_long_line() -> None:
    (task,) = parse_file('WayTooLongTask')
    assert isinstance(task, Task)
    assert len(task.command) > 300_000


def test_example_late_perengine_task_is_an_error() -> None:
    with pytest.raises(TaskFileError, match='PERENGINE tasks must come before all other tasks'):
        parse_file('latePETask')


def test_example_one_bad_one_leaky_uses_every_directive() -> None:
    items = parse_file('DBtasksOneBadOneLeaky')
    kinds = {type(item) for item in items}
    assert kinds == {Task, Barrier, PerEngineTask}
    assert {item.phase for item in items if isinstance(item, PerEngineTask)} == {Phase.START, Phase.STOP}
    assert any(isinstance(item, Barrier) and item.key == 'mykey' for item in items)
    assert any(isinstance(item, Task) and item.repeat_index == 39 for item in items)


# --- properties ----------------------------------------------------------------------------------------------------

plain_lines = st.binary(max_size=40).filter(
    lambda line: (
        b'\x00' not in line
        and b'\n' not in line
        and b'\r' not in line
        and line.strip() != b''
        and not line.lstrip().startswith(b'#')
    )
)


@given(st.lists(plain_lines, max_size=30), st.sampled_from([b'\n', b'\r\n', b'\r', b'']))
def test_plain_lines_round_trip(lines: list[bytes], ending: bytes) -> None:
    items = list(parse_stream((line + ending for line in lines), 'f'))
    assert items == [
        Task(number, number + 1, NO_REPEAT, line.decode('utf-8', 'surrogateescape'))
        for number, line in enumerate(lines)
    ]
    assert [item.command.encode('utf-8', 'surrogateescape') for item in items if isinstance(item, Task)] == lines


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1000), st.integers(0, 50)), max_size=10))
def test_repeat_expansions_count(repeats: list[tuple[int, int, int]]) -> None:
    text = b''.join(b'#DISBATCH REPEAT %d start %d step %d cmd\n' % repeat for repeat in repeats)
    items = parse(text)
    assert [item.task_id for item in items] == list(range(sum(count for count, _, _ in repeats)))
    expected = [
        (number, start + index * step)
        for number, (count, start, step) in enumerate(repeats, start=1)
        for index in range(count)
    ]
    assert [(item.line_number, item.repeat_index) for item in items if isinstance(item, Task)] == expected


@given(st.lists(st.sampled_from([b'x', b'#DISBATCH BARRIER', b'# c', b'', b'#DISBATCH REPEAT 2 y']), max_size=30))
def test_ids_are_consecutive_over_tasks_repeats_and_barriers(lines: list[bytes]) -> None:
    items = parse(b''.join(line + b'\n' for line in lines))
    assert [item.task_id for item in items] == list(range(len(items)))
    assert [item.line_number for item in items] == sorted(item.line_number for item in items)
