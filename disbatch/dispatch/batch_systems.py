"""PURE: what each batch system needs from a submission: the job script's header, and the shell commands (with
their output's meaning) to submit, follow and cancel a job: `sbatch`/`squeue`/`scancel`, `qsub`/`qstat`/`qdel` of
Grid Engine and of PBS/Torque, `bsub`/`bjobs`/`bkill`, and for `Shell` a background process and its PID.

Nothing here runs a command: `remote.py` runs what these return on the machine, and the submission hands the
output back here. A job the scheduler no longer lists has ended (what it did is in its status file, not here).
"""

from __future__ import annotations

import abc
import enum
import re
import shlex
from collections.abc import Sequence

from disbatch.dispatch.submission_parts import BatchType, Resources
from disbatch.errors import SubmissionError


class JobPhase(enum.Enum):
    """Where a job is, as its scheduler says."""

    WAITING = 'waiting'  # queued, held, suspended
    RUNNING = 'running'  # running, or finishing
    ENDED = 'ended'  # done, failed, cancelled, or no longer listed


class BatchSystem(abc.ABC):
    """One batch system's header and commands. Commands run in the job's directory on the machine."""

    batch_type: BatchType
    disbatch_flag: str  # `--batch-system` of the disbatch run inside the job

    @abc.abstractmethod
    def header(self, resources: Resources, job_name: str, log_name: str) -> list[str]:
        """The script's directive lines (after `#!/bin/bash`), from the resources; output and errors to the log."""

    @abc.abstractmethod
    def submit_command(self, script: str, log_name: str) -> str:
        """The command that submits `script` (a file in the current directory) and prints what `job_id` reads."""

    @abc.abstractmethod
    def job_id(self, output: str) -> str:
        """The job id in the submit command's output; ValueError if there is none."""

    @abc.abstractmethod
    def query_command(self, job_ids: Sequence[str]) -> str:
        """A command listing the jobs among `job_ids` the scheduler still knows, for `phases`."""

    @abc.abstractmethod
    def phases(self, output: str, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        """The phase of each of `job_ids` from the query's output: a job not listed has ended."""

    @abc.abstractmethod
    def cancel_command(self, job_ids: Sequence[str]) -> str:
        """A command that cancels the jobs (their disbatch runs record what they stop)."""

    def leftover_command(self, job_ids: Sequence[str]) -> str | None:
        """A command that removes jobs `phases` says have ended but the scheduler may still hold (an error state),
        or None when an ended job never lingers."""
        return None

    def query_failed(self, return_code: int, error: str) -> bool:
        """Whether a query that exited `return_code` failed (its output says nothing) rather than found no job."""
        return return_code != 0


def walltime_seconds(text: str) -> int:
    """`[[D-]HH:]MM:SS`-style walltime (`24:00:00`, `1-00:00:00`, `90:00`) in seconds."""
    days, _, clock = text.rpartition('-')
    parts = clock.split(':')
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() for part in parts) or (days and not days.isdigit()):
        raise SubmissionError(f'resources: walltime {text!r} is not [D-]HH:MM:SS')
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds + int(days or 0) * 86400


def _clock(seconds: int) -> str:
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _table(output: str, job_ids: Sequence[str], id_column: int, state_column: int) -> dict[str, str]:
    """The state word of each listed job of `job_ids` in a whitespace table (ids compared up to their first dot)."""
    wanted = {job_id.split('.')[0]: job_id for job_id in job_ids}
    states: dict[str, str] = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) <= max(id_column, state_column):
            continue
        job_id = wanted.get(words[id_column].split('.')[0].rstrip('*'))
        if job_id is not None:
            states[job_id] = words[state_column]
    return states


class Shell(BatchSystem):
    """No scheduler: the job script runs as a background process in its own session; its PID is the job id."""

    batch_type = BatchType.SHELL
    disbatch_flag = 'none'

    def header(self, resources: Resources, job_name: str, log_name: str) -> list[str]:
        return []

    def submit_command(self, script: str, log_name: str) -> str:
        return f'setsid nohup bash {shlex.quote(script)} >{shlex.quote(log_name)} 2>&1 </dev/null & echo $!'

    def job_id(self, output: str) -> str:
        words = output.split()
        if not words or not words[-1].isdigit():
            raise ValueError(f'no process id in {output!r}')
        return words[-1]

    def query_command(self, job_ids: Sequence[str]) -> str:
        # alive and not a zombie (a job whose parent has not reaped it yet has ended)
        return (
            f'for pid in {" ".join(job_ids)}; do state=$(ps -o stat= -p "$pid" 2>/dev/null) && '
            '[ "${state#Z}" = "$state" ] && echo "$pid"; done; true'
        )

    def phases(self, output: str, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        alive = set(output.split())
        return {job_id: JobPhase.RUNNING if job_id in alive else JobPhase.ENDED for job_id in job_ids}

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        return f'for pid in {" ".join(job_ids)}; do kill -TERM -- "-$pid" 2>/dev/null; done; true'


class Slurm(BatchSystem):
    batch_type = BatchType.SLURM
    disbatch_flag = 'slurm'
    _WAITING = {'PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'RESIZING', 'SUSPENDED'}
    _RUNNING = {'RUNNING', 'COMPLETING', 'STAGE_OUT', 'SIGNALING'}

    def header(self, resources: Resources, job_name: str, log_name: str) -> list[str]:
        lines = [
            f'#SBATCH --job-name={job_name}',
            f'#SBATCH --output={log_name}',
            f'#SBATCH --nodes={resources.number_node}',
            f'#SBATCH --ntasks-per-node={resources.cpu_per_node}',
        ]
        gpu_line = resources.kwargs.get('custom_gpu_line')
        if gpu_line:
            lines.append(str(gpu_line))
        elif resources.gpu_per_node:
            lines.append(f'#SBATCH --gres=gpu:{resources.gpu_per_node}')
        if resources.queue_name:
            lines.append(f'#SBATCH --partition={resources.queue_name}')
        if resources.walltime:
            lines.append(f'#SBATCH --time={_clock(walltime_seconds(resources.walltime))}')
        return lines

    def submit_command(self, script: str, log_name: str) -> str:
        return f'sbatch --parsable {shlex.quote(script)}'

    def job_id(self, output: str) -> str:
        return _number_before(output, ';')  # --parsable: `ID` or `ID;CLUSTER`

    def query_command(self, job_ids: Sequence[str]) -> str:
        return 'squeue --noheader --format="%i %T" --user="$(id -un)"'

    def phases(self, output: str, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        states = _table(output, job_ids, 0, 1)
        return {job_id: self._phase(states.get(job_id)) for job_id in job_ids}

    def _phase(self, state: str | None) -> JobPhase:
        if state in self._WAITING:
            return JobPhase.WAITING
        return JobPhase.RUNNING if state in self._RUNNING else JobPhase.ENDED

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        return f'scancel {" ".join(job_ids)}'


class GridEngine(BatchSystem):
    """(Son of) Grid Engine: a parallel environment (`kwargs.pe_name`, default `mpi`) gives the job its slots."""

    batch_type = BatchType.SGE
    disbatch_flag = 'sge'

    def header(self, resources: Resources, job_name: str, log_name: str) -> list[str]:
        slots = resources.number_node * resources.cpu_per_node
        lines = [
            '#$ -S /bin/bash',
            f'#$ -N {resources.kwargs.get("job_name") or job_name}',
            f'#$ -o {log_name}',
            '#$ -j y',
            '#$ -cwd',
            f'#$ -pe {resources.kwargs.get("pe_name") or "mpi"} {slots}',
        ]
        if resources.gpu_per_node:
            lines.append(f'#$ -l gpu={resources.gpu_per_node}')
        if resources.queue_name:
            lines.append(f'#$ -q {resources.queue_name}')
        if resources.walltime:
            lines.append(f'#$ -l h_rt={_clock(walltime_seconds(resources.walltime))}')
        return lines

    def submit_command(self, script: str, log_name: str) -> str:
        return f'qsub -terse {shlex.quote(script)}'

    def job_id(self, output: str) -> str:
        return _number_before(output, '.')  # -terse: `ID`, or `ID.TASKS` for an array job

    def query_command(self, job_ids: Sequence[str]) -> str:
        return 'qstat'

    def phases(self, output: str, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        states = _table(output, job_ids, 0, 4)
        return {job_id: self._phase(states.get(job_id)) for job_id in job_ids}

    @staticmethod
    def _phase(state: str | None) -> JobPhase:
        if state is None or 'E' in state:  # Eqw: the job cannot start; it has ended as far as its tasks go
            return JobPhase.ENDED
        return JobPhase.WAITING if 'q' in state or 'h' in state or 's' in state.lower() else JobPhase.RUNNING

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        return f'qdel {" ".join(job_ids)}'

    def leftover_command(self, job_ids: Sequence[str]) -> str | None:
        return f'qdel {" ".join(job_ids)} >/dev/null 2>&1; true'  # an Eqw job would wait in the queue for ever


class Pbs(BatchSystem):
    """PBS Pro (`-l select=`) and Torque (`-l nodes=N:ppn=C`)."""

    disbatch_flag = 'pbs'

    def __init__(self, batch_type: BatchType) -> None:
        self.batch_type = batch_type

    def header(self, resources: Resources, job_name: str, log_name: str) -> list[str]:
        gpus = resources.gpu_per_node
        if self.batch_type is BatchType.TORQUE:
            select = f'nodes={resources.number_node}:ppn={resources.cpu_per_node}' + (f':gpus={gpus}' if gpus else '')
        else:
            select = f'select={resources.number_node}:ncpus={resources.cpu_per_node}' + (
                f':ngpus={gpus}' if gpus else ''
            )
        lines = [f'#PBS -N {job_name}', f'#PBS -o {log_name}', '#PBS -j oe', f'#PBS -l {select}']
        if resources.queue_name:
            lines.append(f'#PBS -q {resources.queue_name}')
        if resources.walltime:
            lines.append(f'#PBS -l walltime={_clock(walltime_seconds(resources.walltime))}')
        return lines

    def submit_command(self, script: str, log_name: str) -> str:
        return f'qsub {shlex.quote(script)}'

    def job_id(self, output: str) -> str:
        lines = output.strip().splitlines()
        job_id = lines[-1].strip() if lines else ''
        if not job_id.split('.')[0].isdigit():
            raise ValueError(f'no job id in {output!r}')
        return job_id

    def query_command(self, job_ids: Sequence[str]) -> str:
        return 'qstat'

    def phases(self, output: str, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        states = _table(output, job_ids, 0, 4)
        return {job_id: self._phase(states.get(job_id)) for job_id in job_ids}

    @staticmethod
    def _phase(state: str | None) -> JobPhase:
        if state in ('Q', 'H', 'W', 'T', 'S', 'U'):
            return JobPhase.WAITING
        return JobPhase.RUNNING if state in ('R', 'E', 'B') else JobPhase.ENDED  # C, F, X or gone: ended

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        return f'qdel {" ".join(job_ids)}'


class Lsf(BatchSystem):
    batch_type = BatchType.LSF
    disbatch_flag = 'lsf'

    def header(self, resources: Resources, job_name: str, log_name: str) -> list[str]:
        lines = [
            f'#BSUB -J {job_name}',
            f'#BSUB -o {log_name}',
            f'#BSUB -e {log_name}',
            f'#BSUB -n {resources.number_node * resources.cpu_per_node}',
            f'#BSUB -R "span[ptile={resources.cpu_per_node}]"',
        ]
        if resources.gpu_per_node:
            lines.append(f'#BSUB -gpu "num={resources.gpu_per_node}"')
        if resources.queue_name:
            lines.append(f'#BSUB -q {resources.queue_name}')
        if resources.walltime:
            minutes = -(-walltime_seconds(resources.walltime) // 60)
            lines.append(f'#BSUB -W {minutes // 60}:{minutes % 60:02d}')
        return lines

    def submit_command(self, script: str, log_name: str) -> str:
        return f'bsub < {shlex.quote(script)}'

    def job_id(self, output: str) -> str:
        found = re.search(r'Job <(\d+)> is submitted', output)
        if found is None:
            raise ValueError(f'no job id in {output!r}')
        return found.group(1)

    def query_command(self, job_ids: Sequence[str]) -> str:
        return f'bjobs -a -noheader -o "jobid stat" {" ".join(job_ids)} 2>/dev/null; true'

    def phases(self, output: str, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        states = _table(output, job_ids, 0, 1)
        return {job_id: self._phase(states.get(job_id)) for job_id in job_ids}

    @staticmethod
    def _phase(state: str | None) -> JobPhase:
        if state in ('PEND', 'PSUSP', 'USUSP', 'SSUSP', 'WAIT', 'PROV'):
            return JobPhase.WAITING
        return JobPhase.RUNNING if state == 'RUN' else JobPhase.ENDED  # DONE, EXIT, UNKWN, ZOMBI, gone

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        return f'bkill {" ".join(job_ids)}'


def batch_system(batch_type: BatchType) -> BatchSystem:
    """The batch system of a machine's `batch_type`."""
    if batch_type in (BatchType.PBS, BatchType.TORQUE):
        return Pbs(batch_type)
    systems: dict[BatchType, type[BatchSystem]] = {
        BatchType.SHELL: Shell,
        BatchType.SLURM: Slurm,
        BatchType.SGE: GridEngine,
        BatchType.LSF: Lsf,
    }
    return systems[batch_type]()


def _number_before(output: str, separator: str) -> str:
    """The job id a submit command printed on its last line, before `separator`; ValueError if it is no number."""
    lines = output.strip().splitlines()
    job_id = lines[-1].split(separator)[0].strip() if lines else ''
    if not job_id.isdigit():
        raise ValueError(f'no job id in {output!r}')
    return job_id
