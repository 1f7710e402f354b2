"""The run's contract: every format that crosses a process boundary and is not a wire message (those are
`disbatch.protocol`'s), one module per format, each imported by both sides:

- `run_files`: the names of the run's files (status file, logs, dbUtil script, ...), made from its stem;
- `kvs_keys`: the KVS keys of the snapshot, of the monitor's commands and of the task-source protocol;
- `control`: the monitor's commands (`RetireEngine`, `RetireContext`), written by the monitor, read by the driver;
- `launch_line`: an engine's first stdin line, written by its context, read by the engine;
- `snapshot`: the run's `Snapshot`, published by the driver, read by the monitor, page, mail and report;
- `json_events`: the `--json` lines, written by the journal, read by `disbatch report`;
- `json_fields`: the one small dataclass-JSON mapping the last two are written and read with.

The package imports no driver code and no I/O library: a reader of a run needs nothing else.
"""

from __future__ import annotations

from disbatch.contract.kvs_keys import CONTROL_KEY, STATUS_KEY
from disbatch.contract.run_files import (
    CONTEXT_LOG_SUFFIX,
    ENGINE_LOG_SUFFIX,
    NAMED_IN_MESSAGES,
    STATUS_SUFFIX,
    RunFiles,
    stem_of,
)

__all__ = [
    'CONTEXT_LOG_SUFFIX',
    'CONTROL_KEY',
    'ENGINE_LOG_SUFFIX',
    'NAMED_IN_MESSAGES',
    'STATUS_KEY',
    'STATUS_SUFFIX',
    'RunFiles',
    'stem_of',
]
