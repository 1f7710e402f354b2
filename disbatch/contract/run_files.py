"""The run's files: their names, all made from the run's stem.

The driver writes these; the context process, the monitor, the web page, `disbatch report`, `disbatch submit` and
the reference's tools read them. Nothing else spells a run-file name, so a reader never imports the driver for one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

STATUS_SUFFIX = '_status.txt'
CONTEXT_LOG_SUFFIX = '.context.log'
ENGINE_LOG_SUFFIX = '_engine_wrap.log'


@dataclass(frozen=True, slots=True)
class RunFiles:
    stem: str  # absolute path prefix shared by every file of the run

    @property
    def job_id(self) -> str:
        """DISBATCH_JOBID: the stem's last component."""
        return os.path.basename(self.stem)

    @property
    def status(self) -> str:
        return f'{self.stem}{STATUS_SUFFIX}'

    @property
    def driver_log(self) -> str:
        return f'{self.stem}_driver.log'

    @property
    def dbutil(self) -> str:
        return f'{self.stem}_dbUtil.sh'

    @property
    def url(self) -> str:
        return f'{self.stem}_url'

    @property
    def events(self) -> str:
        """The default `--json` file."""
        return f'{self.stem}_events.jsonl'

    @property
    def resubmit(self) -> str:
        """The follow-up job's script (--resubmit)."""
        return f'{self.stem}_resubmit.sh'

    @property
    def kvsinfo(self) -> str:
        return f'{self.stem}_kvsinfo.txt'

    def context_log(self, label: str) -> str:
        return f'{self.stem}_{label}{CONTEXT_LOG_SUFFIX}'

    def engine_log(self, context: str, host: str) -> str:
        return f'{self.stem}_{context}_{host}{ENGINE_LOG_SUFFIX}'

    @property
    def fixed_names(self) -> list[str]:
        """Every file of the run whose name is known from the stem alone (the logs per context and host are not)."""
        return [self.status, self.driver_log, self.dbutil, self.url, self.events, self.resubmit, self.kvsinfo]

    def is_log_name(self, name: str) -> bool:
        """Whether `name` (a file name in the stem's directory) is a context or engine log of this run."""
        return name.startswith(f'{os.path.basename(self.stem)}_') and name.endswith(
            (CONTEXT_LOG_SUFFIX, ENGINE_LOG_SUFFIX)
        )

    @property
    def engine_log_pattern(self) -> str:
        """`engine_log` with `{context}` and `{host}` left for the context to fill in."""
        return self.engine_log('{context}', '{host}')


# The files of a run as messages to a user name them: `<stem>_dbUtil.sh`, ...
NAMED_IN_MESSAGES = RunFiles('<stem>')


def stem_of(status_path: str) -> str:
    """The run's stem (its job id when given a bare name) from the path of its status file."""
    return status_path.removesuffix(STATUS_SUFFIX)
