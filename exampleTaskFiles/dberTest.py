#!/usr/bin/env python3
"""Embedded use of disbatch: submit tasks from Python and collect each result as it finishes.

    ./dberTest.py 8 -s localhost:4

First N squares (the task for 7 fails on purpose), then, through one REPEAT line, N cubes from 100 in steps of 3
(the one for 112 fails). Results are collected one by one with wait_one_task, and the squares again with syncTasks.
"""

import sys

from disbatch import DisBatcher

count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
batcher = DisBatcher(tasksname='dberTest', args=sys.argv[2:] or ['-s', 'localhost:2'])

squares = [batcher.submit(f'echo $(({n} * {n})); [ {n} -ne 7 ]') for n in range(count)]
batcher.submit(
    f'#DISBATCH REPEAT {count} start 100 step 3 echo $((DISBATCH_REPEAT_INDEX ** 3)); '
    '[ $DISBATCH_REPEAT_INDEX -ne 112 ]'
)

for _ in range(2 * count):
    report = batcher.wait_one_task()
    print(f'task {report["TaskId"]:3d} rc {report["ReturnCode"]:3d} output {report["OutData"].strip()}')

reports = batcher.syncTasks(squares)
failed = sorted(task_id for task_id, report in reports.items() if report['ReturnCode'] != 0)
print(f'squares done: {len(reports)}, failed: {failed}')
sys.exit(batcher.done())
