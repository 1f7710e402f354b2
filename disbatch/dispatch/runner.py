"""How a submission runs, the I/O shell around `tracking.py`: check, stage, submit, follow, resubmit, fetch, report.

1. Check: every forward file (globs allowed) exists under work_base; a missing one is an error naming it, before
   the machine is touched.
2. Prepare: make `<remote_root>/<hash>` (for `LazyLocal`, work_base itself) and the task directories there, and
   learn its absolute path; a directory that cannot be made or written is an error naming it, nothing submitted.
3. Upload, in one tar stream: the forward files, and each job's task file and first script into
   `<run directory>/.disbatch_<hash>/`.
4. Submit each job; a job the scheduler refuses is an error quoting it, and the jobs this step submitted are
   cancelled, so nothing is left queued. Every job id is saved (`state.py`) as soon as it is known.
5. Follow, every `check_interval` seconds: one scheduler query and one read of every status file; a job the
   scheduler no longer runs is done, resubmitted with `-r`, or given up (`tracking.verdict`). A done job's
   outlogs, errlogs and backward files are fetched at once; a backward file a succeeded task did not make fails
   that task, the others are fetched.
6. Report: a result per task; `TasksFailedError` listing the tasks that failed or never ran. On success the saved
   state is removed (and with `clean` the run directory on the machine).

Ctrl-C leaves the jobs running, saves the state and says how to re-attach and how to cancel. Running the same
submission again re-attaches: jobs with an id are followed, never submitted twice.
"""

from __future__ import annotations

import glob
import os
import posixpath
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

from disbatch.contract import RunFiles
from disbatch.dispatch.batch_systems import BatchSystem, JobPhase, batch_system
from disbatch.dispatch.job_script import JobFiles, job_script, task_file_text
from disbatch.dispatch.remote import Remote, Upload
from disbatch.dispatch.state import JobState, SubmissionState, TaskResult
from disbatch.dispatch.submission_parts import ContextType, Machine, Resources, Task
from disbatch.dispatch.tracking import (
    EXIT_NAME,
    STATUS_NAME,
    Attempt,
    JobView,
    Verdict,
    job_ended_tasks,
    parse_status_text,
    verdict,
)
from disbatch.errors import SubmissionError, TasksFailedError
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_line import format_line


class SubmissionPlan(Protocol):
    """What a runner reads of a submission (`disbatch.dispatch.Submission` is one). Named here, not imported: a
    Submission runs itself through a Runner (`run_submission`), and the runner stands below it."""

    task_list: list[Task]
    forward_common_files: list[str]
    backward_common_files: list[str]

    @property
    def parts(self) -> tuple[Machine, Resources]: ...

    @property
    def local_directory(self) -> str: ...

    @property
    def hash(self) -> str: ...

    def jobs(self) -> list[list[int]]: ...

    def serialize(self) -> dict[str, Any]: ...


class Runner:
    def __init__(self, submission: SubmissionPlan, submission_hash: str | None = None) -> None:
        """`submission_hash`: a saved submission's (rebuilt elsewhere, its own hash may differ: a relative
        local_root names another directory)."""
        self.submission = submission
        self.machine: Machine = submission.parts[0]
        self.resources: Resources = submission.parts[1]
        self.tasks: list[Task] = submission.task_list
        self.system: BatchSystem = batch_system(self.machine.batch)
        self.remote = Remote(self.machine.profile if self.machine.context is ContextType.SSH else None)
        self.hash = submission_hash or submission.hash
        self.local_directory = submission.local_directory
        self.lazy = self.machine.context is ContextType.LAZY_LOCAL
        self.interactive = sys.stderr.isatty()
        self._progress_shown = ''
        self._query_problem = ''

    # ------------------------------------------------------------ names

    def _run_directory_wanted(self) -> str:
        """The run directory as the machine's shell should make it (relative: to the login directory)."""
        if self.lazy:
            return self.local_directory
        assert self.machine.remote_root is not None
        root = self.machine.remote_root
        if self.remote.is_local:
            root = os.path.abspath(os.path.expanduser(root))
        elif root == '~' or root.startswith('~/'):
            root = root[2:] or '.'
        return posixpath.join(root, self.hash)

    def _jobs_directory(self, run_directory: str) -> str:
        return posixpath.join(run_directory, f'.disbatch_{self.hash[:12]}')

    def _job_files(self, run_directory: str, index: int) -> JobFiles:
        return JobFiles(self._jobs_directory(run_directory), index, self.hash)

    @property
    def _disbatch_command(self) -> str:
        """disbatch on the machine: this very interpreter's on this machine, `disbatch` on the PATH elsewhere."""
        return shlex.join([sys.executable, '-m', 'disbatch']) if self.remote.is_local else 'disbatch'

    def _script(self, run_directory: str, job: int, attempt: int, earlier: Sequence[str]) -> str:
        template_file = self.resources.header_template_file
        template = None
        if template_file is not None:
            try:
                with open(os.path.join(self.local_directory, template_file), encoding='utf-8') as stream:
                    template = stream.read()
            except OSError as error:
                raise SubmissionError(f'{template_file}: cannot read the header template: {error.strerror}') from None
        files = self._job_files(run_directory, job)
        return job_script(
            self.system, self.resources, files, attempt, run_directory, self._disbatch_command, earlier, template
        )

    # ------------------------------------------------------------ 1. check

    def forward_files(self) -> list[str]:
        """Every forward file (common and per task), relative to work_base; SubmissionError naming a missing one."""
        found: list[str] = []
        missing: list[str] = []
        wanted: list[tuple[str, int | None]] = [(pattern, None) for pattern in self.submission.forward_common_files]
        wanted += [
            (posixpath.join(task.task_work_path, pattern), index)
            for index, task in enumerate(self.tasks)
            for pattern in task.forward_files
        ]
        for pattern, index in wanted:
            names = sorted(glob.glob(pattern, root_dir=self.local_directory))
            if not names:
                missing.append(f'{posixpath.normpath(pattern)}' + (f' (task {index})' if index is not None else ''))
            found += [posixpath.normpath(name) for name in names]
        if missing:
            more = f' and {len(missing) - 1} more' if len(missing) > 1 else ''
            raise SubmissionError(f'forward file {missing[0]} is missing in {self.local_directory}{more}')
        return list(dict.fromkeys(found))

    # ------------------------------------------------------------ dry run

    def dry_run(self) -> None:
        forward = self.forward_files()
        run_directory = self._run_directory_wanted()
        where = f'{self.machine.batch.value} on {self.remote.where}, {self.machine.context.value}'
        print(f'# submission {self.hash} ({where}): {len(self.tasks)} tasks in {len(self.submission.jobs())} jobs')
        print(f'# run directory: {run_directory}')
        for index, task_indices in enumerate(self.submission.jobs()):
            files = self._job_files(run_directory, index)
            print(f'\n# ---- {files.script(1)}')
            print(self._script(run_directory, index, 1, []), end='')
            print(f'# ---- {files.task_file}')
            print(task_file_text(run_directory, [self.tasks[i] for i in task_indices]), end='')
        if not self.lazy:
            print(f'\n# upload from {self.local_directory} to {self.remote.where}:{run_directory}')
            for name in forward:
                print(f'  {name}')
        print(f'\n# fetch into {self.local_directory} when a job is done')
        for task in self.tasks:
            for pattern in self._fetched_patterns(task):
                print(f'  {pattern}')
        for pattern in self.submission.backward_common_files:
            print(f'  {pattern}')

    # ------------------------------------------------------------ 2-4. prepare, upload, submit

    def run(self, exit_on_submit: bool, clean: bool, check_interval: float) -> list[TaskResult]:
        state = SubmissionState.load(self.hash)
        if state is None:
            forward = self.forward_files()
            state = SubmissionState(self.hash, self.submission.serialize())
            state.jobs = [JobState(index, indices) for index, indices in enumerate(self.submission.jobs())]
            state.run_directory = self._prepare()
            self._upload(state, forward)
            state.uploaded = True
            state.save()
        else:
            live = [job.live_id for job in state.jobs if job.live_id]
            self._say(f're-attaching to submission {self.hash[:12]} ({len(live)} jobs live: {" ".join(live)})')
        try:
            self._submit_new(state)
            if exit_on_submit:
                self._say(self._how_to_follow(state))
                return []
            self._follow(state, check_interval)
        except KeyboardInterrupt:
            state.save()
            self._end_progress()
            self._say(f'interrupted: the jobs keep running. {self._how_to_follow(state)}')
            raise
        return self._finish(state, clean)

    def _how_to_follow(self, state: SubmissionState) -> str:
        live = ' '.join(job.live_id for job in state.jobs if job.live_id)
        return (
            f'Jobs {live}: re-attach by running the same submission again (disbatch submit FILE.json, or the '
            f'script); see them with: disbatch submit --status {self.hash[:12]}; '
            f'cancel them with: disbatch submit --cancel {self.hash[:12]}'
        )

    def _prepare(self) -> str:
        """Make the run directory, the jobs directory and the task directories on the machine; its absolute path."""
        wanted = self._run_directory_wanted()
        directories = sorted({posixpath.normpath(task.task_work_path) for task in self.tasks})
        script = (
            f'mkdir -p -- {shlex.quote(wanted)} && cd -- {shlex.quote(wanted)} && '
            f'mkdir -p -- {shlex.join(directories)} {shlex.quote(self._jobs_directory("."))} && '
            'touch .disbatch_writable && rm -f .disbatch_writable && pwd -P'
        )
        answer = self.remote.run(script)
        run_directory = answer.stdout.strip().splitlines()[-1] if answer.return_code == 0 and answer.stdout else ''
        if answer.return_code != 0 or not run_directory.startswith('/'):
            what = 'work_base' if self.lazy else 'remote_root'
            place = self.machine.remote_root if not self.lazy else self.local_directory
            raise SubmissionError(f'{what} {place} on {self.remote.where} cannot be written: {answer.message}')
        return run_directory

    def _upload(self, state: SubmissionState, forward: Sequence[str]) -> None:
        run_directory = state.run_directory
        uploads: list[Upload] = []
        if not self.lazy:
            uploads += [Upload(name, path=os.path.join(self.local_directory, name)) for name in forward]
        for job in state.jobs:
            files = self._job_files(run_directory, job.index)
            text = task_file_text(run_directory, [self.tasks[i] for i in job.task_indices])
            uploads.append(Upload(posixpath.relpath(files.task_file, run_directory), text=text))
            script = self._script(run_directory, job.index, 1, [])
            uploads.append(Upload(posixpath.relpath(files.script(1), run_directory), text=script, mode=0o755))
        self.remote.upload(run_directory, uploads)

    def _submit_new(self, state: SubmissionState) -> None:
        """Submit the jobs that have no id yet; if the scheduler refuses one, cancel those just submitted."""
        submitted: list[JobState] = []
        for job in state.jobs:
            if job.job_ids or job.done:
                continue
            try:
                job.job_ids.append(self._submit(state.run_directory, job.index, 1))
            except SubmissionError:
                if submitted:
                    self._cancel_ids([other.job_ids[-1] for other in submitted])
                    for other in submitted:
                        other.job_ids.clear()
                state.save()
                raise
            submitted.append(job)
            state.save()
            self._say(f'job {job.index} submitted: {self.system.batch_type.value} job {job.job_ids[-1]}')
            if self.resources.wait_time:
                time.sleep(self.resources.wait_time)

    def _submit(self, run_directory: str, job: int, attempt: int) -> str:
        files = self._job_files(run_directory, job)
        script, log = posixpath.basename(files.script(attempt)), posixpath.basename(files.log(attempt))
        command = f'cd -- {shlex.quote(files.directory)} && {{ {self.system.submit_command(script, log)}; }}'
        answer = self.remote.run(command)
        if answer.return_code != 0:
            raise SubmissionError(
                f'{self.system.batch_type.value} refused job {job} ({files.script(attempt)}): {answer.message}'
            )
        try:
            return self.system.job_id(answer.stdout)
        except ValueError:
            raise SubmissionError(
                f'{self.system.batch_type.value} gave no job id for job {job}: {answer.message}'
            ) from None

    def _cancel_ids(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self.remote.run(self.system.cancel_command(job_ids))

    # ------------------------------------------------------------ 5. follow

    def _follow(self, state: SubmissionState, check_interval: float) -> None:
        phases: dict[str, JobPhase] = {}
        while True:
            live = [job for job in state.jobs if not job.done]
            if not live:
                break
            phases.update(self._phases([job.job_ids[-1] for job in live]))  # before the files: then they are whole
            attempts = self._attempts(state.run_directory)
            views: dict[int, JobView] = {}
            for job in live:
                phase = phases.get(job.job_ids[-1], JobPhase.WAITING)
                ended = job_ended_tasks(self._history(attempts, job), phase is JobPhase.ENDED)
                view = views[job.index] = JobView(len(job.task_indices), ended, phase, job.attempts)
                decision = verdict(view, self.machine.retry_count)
                leftover = self.system.leftover_command([job.job_ids[-1]])
                if decision is not Verdict.FOLLOW and leftover is not None:
                    self.remote.run(leftover)
                if decision is Verdict.RESUBMIT:
                    self._resubmit(state, job, view)
                elif decision is not Verdict.FOLLOW:
                    self._job_done(state, job, view)
            self._progress(state, views)
            if any(not job.done for job in state.jobs):
                time.sleep(check_interval)
        self._end_progress()

    def _phases(self, job_ids: Sequence[str]) -> dict[str, JobPhase]:
        """The scheduler's word on the jobs; none when its query fails (said once; the jobs are asked again)."""
        answer = self.remote.run(self.system.query_command(job_ids))
        if self.system.query_failed(answer.return_code, answer.stderr):
            if answer.message != self._query_problem:
                self._say(f'cannot ask {self.system.batch_type.value} about the jobs (trying again): {answer.message}')
            self._query_problem = answer.message
            return {}
        self._query_problem = ''
        return self.system.phases(answer.stdout, job_ids)

    def _attempts(self, run_directory: str) -> dict[tuple[int, int], Attempt]:
        """Every attempt's status records and exit code, by (job, attempt), read in one command."""
        directory = self._jobs_directory(run_directory)
        script = (
            f'shopt -s nullglob; cd -- {shlex.quote(directory)} || exit 1; '
            f'for f in {RunFiles("job*.a*").status} job*.a*.exit; do printf \'\\0%s\\0\' "$f"; cat -- "$f"; done'
        )
        answer = self.remote.run(script)
        records: dict[tuple[int, int], list[StatusRecord]] = {}
        exit_codes: dict[tuple[int, int], int] = {}
        pieces = answer.stdout.split('\0')
        for name, text in zip(pieces[1::2], pieces[2::2], strict=False):
            status, exit_file = STATUS_NAME.search(name), EXIT_NAME.search(name)
            if status is not None:
                records[int(status.group('job')), int(status.group('attempt'))] = parse_status_text(text)
            elif exit_file is not None and text.strip().lstrip('-').isdigit():
                exit_codes[int(exit_file.group('job')), int(exit_file.group('attempt'))] = int(text)
        keys = set(records) | set(exit_codes)
        return {key: Attempt(records.get(key, []), exit_codes.get(key)) for key in keys}

    @staticmethod
    def _history(attempts: dict[tuple[int, int], Attempt], job: JobState) -> list[Attempt]:
        """The job's attempts in order (one not yet started: no records, no exit code)."""
        return [attempts.get((job.index, number), Attempt([], None)) for number in range(1, job.attempts + 1)]

    def _resubmit(self, state: SubmissionState, job: JobState, view: JobView) -> None:
        """Submit the job again, resuming from a status file of its ended tasks (-r), so none of them runs again."""
        attempt = job.attempts + 1
        files = self._job_files(state.run_directory, job.index)
        carried = ''.join(format_line(view.ended[task]) + '\n' for task in sorted(view.ended))
        script = self._script(state.run_directory, job.index, attempt, [files.carried(attempt)] if carried else [])
        uploads = [Upload(posixpath.relpath(files.script(attempt), state.run_directory), text=script, mode=0o755)]
        if carried:
            uploads.append(Upload(posixpath.relpath(files.carried(attempt), state.run_directory), text=carried))
        self.remote.upload(state.run_directory, uploads)
        try:
            job_id = self._submit(state.run_directory, job.index, attempt)
        except SubmissionError as error:
            self._job_done(state, job, view, f'not run: resubmitting its job failed: {error}')
            return
        job.job_ids.append(job_id)
        state.save()
        left = len(job.task_indices) - len(view.ended)
        self._say(
            f'job {job.index} ({self.system.batch_type.value} job {job.job_ids[-2]}) ended with {left} tasks left: '
            f'resubmitted with -r as job {job_id} (attempt {attempt} of {self.machine.retry_count + 1})'
        )

    # ------------------------------------------------------------ a job done: fetch, results

    def _fetched_patterns(self, task: Task) -> list[str]:
        names = [name for name in (task.outlog, task.errlog) if name]
        return [
            posixpath.normpath(posixpath.join(task.task_work_path, name)) for name in [*names, *task.backward_files]
        ]

    def _job_done(self, state: SubmissionState, job: JobState, view: JobView, lost: str = '') -> None:
        """Fetch the files of a job whose tasks have all ended (or been given up), and record their results."""
        results: list[TaskResult] = []
        fetch: list[tuple[TaskResult, Task]] = []
        for local_id, index in enumerate(job.task_indices):
            task = self.tasks[index]
            record = view.ended.get(local_id)
            result = TaskResult(index, task.command, task.task_work_path, 'not run', job=job.index)
            result.job_ids = list(job.job_ids)
            if record is None:
                log = self._job_files(state.run_directory, job.index).log(job.attempts)
                result.message = lost or (
                    f'not run: its job ended {job.attempts} time(s) (last: {self.system.batch_type.value} job '
                    f'{job.job_ids[-1]}) without running it; see {log} on {self.remote.where}'
                )
            else:
                result.return_code = record.return_code
                result.state = 'failed' if record.failed else 'succeeded'
                if record.kind is RecordKind.TIMED_OUT:
                    result.message = 'timed out'
                elif record.failed:
                    result.message = f'failed with exit code {record.return_code}'
                fetch.append((result, task))
            results.append(result)
        self._fetch(state.run_directory, fetch)
        job.results = results
        job.done = True
        state.save()

    def _fetch(self, run_directory: str, fetch: Sequence[tuple[TaskResult, Task]]) -> None:
        """Download the outlogs, errlogs and backward files of ended tasks; a succeeded task missing one fails."""
        patterns: list[str] = []
        owners: list[tuple[TaskResult, bool]] = []  # per pattern: its task's result, and whether it is a backward one
        for result, task in fetch:
            logs = [name for name in (task.outlog, task.errlog) if name]
            for position, pattern in enumerate(self._fetched_patterns(task)):
                patterns.append(pattern)
                owners.append((result, position >= len(logs)))
        found = self.remote.matches(run_directory, patterns)
        names: list[str] = []
        for pattern, paths, (result, backward) in zip(patterns, found, owners, strict=True):
            names += paths
            if not paths and backward and result.succeeded:
                result.state = 'failed'
                result.message = f'did not make backward file {pattern}'
            elif not paths and backward:
                result.message += f'; did not make backward file {pattern}'
        if not self.lazy:
            try:
                self.remote.download(run_directory, list(dict.fromkeys(names)), self.local_directory)
            except SubmissionError as error:  # the disk is full, say: nothing is lost, the files wait on the machine
                raise SubmissionError(f'{error} (run the same submission again to fetch them)') from None

    # ------------------------------------------------------------ 6. report

    def _finish(self, state: SubmissionState, clean: bool) -> list[TaskResult]:
        results = sorted((result for job in state.jobs for result in job.results), key=lambda result: result.index)
        problems = [result.describe() for result in results if not result.succeeded]
        common = self.submission.backward_common_files
        found = self.remote.matches(state.run_directory, common)
        problems += [
            f'backward common file {pattern} was not made'
            for pattern, paths in zip(common, found, strict=True)
            if not paths
        ]
        if not self.lazy:
            self.remote.download(state.run_directory, [path for paths in found for path in paths], self.local_directory)
        if problems:
            failed = sum(not result.succeeded for result in results)
            summary = f'{failed} of {len(results)} tasks did not succeed' if failed else 'the submission is incomplete'
            raise TasksFailedError('\n'.join([f'{summary} (submission {self.hash[:12]}):', *problems]), list(results))
        if clean:
            self._clean(state.run_directory)
        state.remove()
        self._say(f'all {len(results)} tasks succeeded; their files are in {self.local_directory}')
        return results

    def _clean(self, run_directory: str) -> None:
        target = self._jobs_directory(run_directory) if self.lazy else run_directory
        command = f'rm -rf -- {shlex.quote(target)}'
        if self.machine.clean_asynchronously:
            command = f'nohup {command} >/dev/null 2>&1 </dev/null &'
        self.remote.run(command)

    # ------------------------------------------------------------ talking

    def _say(self, text: str) -> None:
        self._end_progress()
        print(f'disbatch submit: {text}', file=sys.stderr, flush=True)

    def _progress(self, state: SubmissionState, views: dict[int, JobView]) -> None:
        total = len(self.tasks)
        outcomes = [not record.failed for view in views.values() for record in view.ended.values()]
        outcomes += [
            result.succeeded
            for job in state.jobs
            if job.index not in views
            for result in job.results
            if result.state != 'not run'
        ]
        ended, failed = len(outcomes), outcomes.count(False)
        running = sum(view.phase is JobPhase.RUNNING for job, view in views.items() if not state.jobs[job].done)
        waiting = sum(1 for job in state.jobs if not job.done) - running
        text = f'{ended}/{total} tasks ended ({failed} failed); jobs: {running} running, {waiting} waiting'
        if self.interactive:
            width = 30
            filled = width * ended // max(total, 1)
            line = f'\r[{"#" * filled}{"." * (width - filled)}] {text}'
            print(line, end='', file=sys.stderr, flush=True)
            self._progress_shown = line
        elif text != self._progress_shown:
            print(f'disbatch submit: {text}', file=sys.stderr, flush=True)
            self._progress_shown = text

    def _end_progress(self) -> None:
        if self.interactive and self._progress_shown:
            print(file=sys.stderr, flush=True)
            self._progress_shown = ''

    # ------------------------------------------------------------ a saved submission: status, cancel

    def status(self, state: SubmissionState) -> list[str]:
        """One line per job of a saved submission: its ids, where the scheduler has it, its tasks ended."""
        live = [job.job_ids[-1] for job in state.jobs if job.live_id]
        phases = self._phases(live) if live else {}
        attempts = self._attempts(state.run_directory) if state.run_directory else {}
        lines = [f'submission {state.hash} on {self.remote.where}: {state.run_directory or "(not prepared)"}']
        for job in state.jobs:
            phase = phases.get(job.job_ids[-1], JobPhase.WAITING) if job.live_id else JobPhase.ENDED
            ended = job_ended_tasks(self._history(attempts, job), phase is JobPhase.ENDED)
            failed = sum(record.failed for record in ended.values())
            where = phase.value if job.job_ids else 'not submitted'
            if job.done:
                where = 'done'
            ids = ' '.join(job.job_ids) or '-'
            lines.append(
                f'job {job.index}: {self.system.batch_type.value} {ids}: {where}; '
                f'{len(ended)}/{len(job.task_indices)} tasks ended, {failed} failed'
            )
        return lines

    def cancel(self, state: SubmissionState) -> list[str]:
        """Cancel the live jobs of a saved submission and forget it (running it again starts afresh)."""
        live = [job.job_ids[-1] for job in state.jobs if job.live_id]
        self._cancel_ids(live)
        state.remove()
        return [
            f'cancelled {self.system.batch_type.value} jobs {" ".join(live) or "(none live)"}; submission '
            f'{state.hash[:12]} forgotten (its files stay in {state.run_directory} on {self.remote.where})'
        ]
