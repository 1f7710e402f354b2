#!/usr/bin/env python3
"""Embedded use of disbatch: submit tasks from Python and collect their results while they run.

    ./dberTest.py 8 -s localhost:4

First N squares (the one of 7 fails on purpose), collected all at once with syncTasks; then, through one REPEAT
line, N cubes from 100 in steps of 3 (the one of 112 fails), collected one by one with wait_one_task as they finish.
Each finished task is handed out once: wait_one_task returns only cubes, since syncTasks took the squares.
"""

import sys

from disbatch import DisBatcher

count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
with DisBatcher(tasksname='dberTest', args=sys.argv[2:] or ['-s', 'localhost:2']) as batcher:
    squares = [batcher.submit(f'echo $(({n} * {n})); [ {n} -ne 7 ]') for n in range(count)]
    reports = batcher.syncTasks(squares)
    for task_id in squares:
        report = reports[task_id]
        print(f'task {task_id:3d} rc {report["ReturnCode"]:3d} output {report["OutData"].strip()}')
    failed = [task_id for task_id in squares if reports[task_id]['ReturnCode'] != 0]
    print(f'squares done: {len(reports)}, failed: {failed}')

    batcher.submit(
        f'#DISBATCH REPEAT {count} start 100 step 3 echo $((DISBATCH_REPEAT_INDEX ** 3)); '
        '[ $DISBATCH_REPEAT_INDEX -ne 112 ]'
    )
    for _ in range(count):
        report = batcher.wait_one_task()
        print(f'task {report["TaskId"]:3d} rc {report["ReturnCode"]:3d} output {report["OutData"].strip()}')
    exit_code = batcher.done()
sys.exit(exit_code)
