"""The machine a submission's jobs run on, as a shell: run a command there, send files, fetch files, list globs.

`Remote` runs `bash -c SCRIPT` on this machine (`Local`, `LazyLocal`) or through the system `ssh` (`SSH`), so the
user's `~/.ssh/config`, jump hosts and agent work as they do for `ssh` itself. Files go as a tar stream: up, one
stream written by Python's `tarfile` (local files and generated texts alike) into `tar -xf -` on the machine; down,
`tar -cf -` on the machine piped into the local `tar -xf -`. Each stream is one connection, whatever the number of
files. A connection that fails (ssh's own exit code 255: host unreachable, refused, login denied) is a
`SubmissionError` naming the host with ssh's message; so is a command that does not answer in time.
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from disbatch.dispatch.submission_parts import RemoteProfile
from disbatch.errors import SubmissionError

_SSH_FAILED = 255  # ssh's exit code when the connection (not the command) failed
_COMMAND_SECONDS = 120.0  # a short command (mkdir, squeue, cat of status files) that takes longer has hung
_MATCH_MARK = '\x01'  # starts the pattern markers in the output of `matches` (never in a file name from a glob)


@dataclass(frozen=True)
class Answer:
    return_code: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The command's error output (or its output) on one line, for a one-line report."""
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return '; '.join(dict.fromkeys(lines)) if lines else f'exit code {self.return_code}'


@dataclass(frozen=True)
class Upload:
    """One file of an upload: its name in the target directory, and a local path or the text itself."""

    name: str
    path: str | None = None
    text: str | None = None
    mode: int = 0o644


def glob_word(pattern: str) -> str:
    """`pattern` as one bash word that still globs: every character escaped but the glob ones (`* ? [ ]`)."""
    word = []
    for character in pattern:
        if character.isalnum() or character in '*?[]/._-+,=@%^:':
            word.append(character)
        elif character == '\n':
            word.append("$'\\n'")
        else:
            word.append('\\' + character)
    return ''.join(word)


class Remote:
    """This machine (`profile` None) or an SSH host: where jobs are submitted and their files live."""

    def __init__(self, profile: RemoteProfile | None) -> None:
        self.profile = profile

    @property
    def where(self) -> str:
        return self.profile.hostname if self.profile else 'this machine'

    @property
    def is_local(self) -> bool:
        return self.profile is None

    def command_line(self, script: str) -> list[str]:
        """The argv that runs `script` with bash on the machine."""
        if self.profile is None:
            return ['bash', '-c', script]
        options = ['-o', 'BatchMode=yes', '-o', f'ConnectTimeout={self.profile.timeout}']
        if self.profile.port is not None:
            options += ['-p', str(self.profile.port)]
        if self.profile.username:
            options += ['-l', self.profile.username]
        if self.profile.key_filename:
            options += ['-i', os.path.expanduser(self.profile.key_filename)]
        if self.profile.proxy_command:
            options += ['-o', f'ProxyCommand={self.profile.proxy_command}']
        return ['ssh', *options, '--', self.profile.hostname, shlex.join(['bash', '-c', script])]

    def run(self, script: str, timeout: float | None = _COMMAND_SECONDS) -> Answer:
        """Run `script` on the machine; its answer (a failed command is an answer; a failed connection raises)."""
        try:
            done = subprocess.run(
                self.command_line(script),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SubmissionError(f'{self.where}: no answer in {timeout:g} s to: {script}') from None
        answer = Answer(done.returncode, _text(done.stdout), _text(done.stderr))
        self._check_connection(answer)
        return answer

    def _check_connection(self, answer: Answer) -> None:
        if self.profile is not None and answer.return_code == _SSH_FAILED:
            raise SubmissionError(f'ssh {self.profile.hostname}: {answer.message}')

    def upload(self, directory: str, files: Iterable[Upload]) -> None:
        """Write `files` under `directory` on the machine (made if missing), as one tar stream."""
        script = f'mkdir -p -- {shlex.quote(directory)} && tar -x -f - -C {shlex.quote(directory)}'
        process = subprocess.Popen(
            self.command_line(script), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stdin is not None and process.stderr is not None
        try:
            with tarfile.open(fileobj=process.stdin, mode='w|', format=tarfile.PAX_FORMAT) as archive:
                for upload in files:
                    _add(archive, upload)
            process.stdin.close()
        except BrokenPipeError:
            pass  # the far side ended early: its exit code and message say why
        except OSError as error:
            process.kill()
            process.wait()
            raise SubmissionError(f'cannot read {error.filename or "a forward file"}: {error.strerror}') from None
        stderr = process.stderr.read()  # a few lines at most: tar's complaints, ssh's
        process.stderr.close()
        answer = Answer(process.wait(), '', _text(stderr))
        self._check_connection(answer)
        if answer.return_code != 0:
            raise SubmissionError(f'{self.where}: cannot write into {directory}: {answer.message}')

    def download(self, directory: str, names: Sequence[str], local_directory: str) -> None:
        """Fetch `names` (relative to `directory` on the machine) into `local_directory`, as one tar stream."""
        if not names:
            return
        script = f'cd -- {shlex.quote(directory)} && tar -c -f - -- {shlex.join(names)}'
        os.makedirs(local_directory, exist_ok=True)
        sender = subprocess.Popen(self.command_line(script), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert sender.stdout is not None
        receiver = subprocess.Popen(
            ['tar', '-x', '-f', '-', '-C', local_directory], stdin=sender.stdout, stderr=subprocess.PIPE
        )
        sender.stdout.close()  # the receiver holds it now
        _, receiver_error = receiver.communicate()
        _, sender_error = sender.communicate()
        sent = Answer(sender.returncode, '', _text(sender_error))
        self._check_connection(sent)
        if receiver.returncode != 0:
            received = Answer(receiver.returncode, '', _text(receiver_error))
            raise SubmissionError(f'cannot write the downloaded files into {local_directory}: {received.message}')
        if sent.return_code != 0:
            raise SubmissionError(f'{self.where}: cannot read files in {directory}: {sent.message}')

    def matches(self, directory: str, patterns: Sequence[str]) -> list[list[str]]:
        """For each glob pattern (relative to `directory`), the existing paths it names there (sorted)."""
        if not patterns:
            return []
        loops = [
            f"printf '%s\\0' {_MATCH_MARK}{index}; for f in {glob_word(pattern)}; do "
            '[ -e "$f" ] || [ -L "$f" ] && printf \'%s\\0\' "$f"; done'
            for index, pattern in enumerate(patterns)
        ]
        script = f'shopt -s nullglob; cd -- {shlex.quote(directory)} || exit 1; ' + '; '.join(loops) + '; true'
        answer = self.run(script)
        if answer.return_code != 0:
            raise SubmissionError(f'{self.where}: cannot list {directory}: {answer.message}')
        found: list[list[str]] = [[] for _ in patterns]
        current: list[str] | None = None
        for word in answer.stdout.split('\0'):
            if word.startswith(_MATCH_MARK):
                current = found[int(word[1:])]
            elif word and current is not None:
                current.append(word)
        return [sorted(set(paths)) for paths in found]


def _add(archive: tarfile.TarFile, upload: Upload) -> None:
    if upload.text is not None:
        data = upload.text.encode()
        info = tarfile.TarInfo(upload.name)
        info.size = len(data)
        info.mode = upload.mode
        archive.addfile(info, io.BytesIO(data))
    else:
        assert upload.path is not None
        archive.add(upload.path, arcname=upload.name, recursive=True)


def _text(data: bytes | None) -> str:
    return (data or b'').decode('utf-8', 'replace')
