"""What a submission is made of, in dpdispatcher's vocabulary: `Machine`, `Resources` and `Task`, and their JSON.

The argument names and JSON keys are dpdispatcher's documented ones (see the Readme's table for what disbatch does
with each), so a script written for it runs by changing its import. Loading is strict: a key that is not one of
them is an error naming it (and the object it is in), as is a value of the wrong type; keys disbatch cannot honour
(an SSH password, a cloud batch type) are errors that say why, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from disbatch.errors import SubmissionError


class BatchType(enum.Enum):
    """The batch system a job goes to (dpdispatcher's `batch_type`)."""

    SHELL = 'Shell'  # no scheduler: the job script runs as a background process
    SLURM = 'Slurm'
    SGE = 'SGE'
    PBS = 'PBS'
    TORQUE = 'Torque'
    LSF = 'LSF'


class ContextType(enum.Enum):
    """How files and commands reach the machine (dpdispatcher's `context_type`)."""

    LAZY_LOCAL = 'LazyLocal'  # this machine, in place: the jobs run in local_root/work_base
    LOCAL = 'Local'  # this machine, in a copy under remote_root
    SSH = 'SSH'  # another machine, through the system ssh, in a copy under remote_root


# dpdispatcher's batch types disbatch does not run (cloud services and vendor schedulers), with the reason.
_REFUSED_BATCH_TYPES = {
    'slurmjobarray': 'each disbatch job already farms its tasks; use Slurm',
    'dpcloudserver': 'a cloud service, not a batch system disbatch can drive',
    'bohrium': 'a cloud service, not a batch system disbatch can drive',
    'lebesgue': 'a cloud service, not a batch system disbatch can drive',
    'openapi': 'a cloud service, not a batch system disbatch can drive',
    'distributedshell': 'a Hadoop YARN service, not a batch system disbatch can drive',
    'fugaku': "a vendor scheduler disbatch does not know (pjsub); use its 'Shell' batch type inside an allocation",
    'jh_unischeduler': 'a vendor scheduler disbatch does not know',
}
# remote_profile keys disbatch cannot honour: it logs in with the system ssh (keys, the agent, ~/.ssh/config).
_REFUSED_PROFILE_KEYS = ('password', 'passphrase', 'totp_secret')


def parse_batch_type(text: str) -> BatchType:
    """`text` as a batch type: dpdispatcher's spellings, case-insensitive."""
    for batch_type in BatchType:
        if text.lower() == batch_type.value.lower():
            return batch_type
    reason = _REFUSED_BATCH_TYPES.get(text.lower())
    if reason is not None:
        raise SubmissionError(f'machine: batch_type {text!r} is not supported: {reason}')
    known = ', '.join(batch_type.value for batch_type in BatchType)
    raise SubmissionError(f'machine: unknown batch_type {text!r} (known: {known})')


def parse_context_type(text: str) -> ContextType:
    """`text` as a context type: `SSH`, `SSHContext`, `lazylocal`, ... (case-insensitive, `Context` optional)."""
    bare = text.lower().removesuffix('context')
    for context_type in ContextType:
        if bare == context_type.value.lower():
            return context_type
    known = ', '.join(context_type.value for context_type in ContextType)
    raise SubmissionError(f'machine: unknown context_type {text!r} (known: {known}, each also with "Context")')


@dataclass(frozen=True)
class RemoteProfile:
    """How to reach an SSH machine. Login is the system ssh's: keys, the agent, `~/.ssh/config` and its jump hosts."""

    hostname: str
    username: str | None = None
    port: int | None = None  # None: ssh's own default (22, or what ~/.ssh/config says)
    key_filename: str | None = None
    timeout: int = 10  # seconds to connect (ssh's ConnectTimeout)
    proxy_command: str | None = None


@dataclass(frozen=True)
class Machine:
    """Where the jobs run: the batch system, how files and commands get there, and where the files live."""

    batch_type: BatchType | str
    context_type: ContextType | str
    local_root: str = '.'
    remote_root: str | None = None
    remote_profile: RemoteProfile | dict[str, Any] | None = None
    clean_asynchronously: bool = False
    retry_count: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.batch_type, str):
            object.__setattr__(self, 'batch_type', parse_batch_type(self.batch_type))
        if isinstance(self.context_type, str):
            object.__setattr__(self, 'context_type', parse_context_type(self.context_type))
        if isinstance(self.remote_profile, dict):
            object.__setattr__(self, 'remote_profile', _profile_from_dict(self.remote_profile))
        if self.retry_count < 0:
            raise SubmissionError(f'machine: retry_count must be 0 or more, not {self.retry_count}')
        if self.context is not ContextType.LAZY_LOCAL and not self.remote_root:
            raise SubmissionError(f'machine: context_type {self.context.value} needs a remote_root')
        if self.context is ContextType.SSH and self.profile is None:
            raise SubmissionError('machine: context_type SSH needs a remote_profile with a hostname')

    @property
    def batch(self) -> BatchType:
        assert isinstance(self.batch_type, BatchType)
        return self.batch_type

    @property
    def context(self) -> ContextType:
        assert isinstance(self.context_type, ContextType)
        return self.context_type

    @property
    def profile(self) -> RemoteProfile | None:
        assert self.remote_profile is None or isinstance(self.remote_profile, RemoteProfile)
        return self.remote_profile

    @classmethod
    def load_from_dict(cls, data: Mapping[str, Any]) -> Machine:
        return _from_dict(cls, data, 'machine')

    @classmethod
    def load_from_json(cls, path: str | Path) -> Machine:
        return cls.load_from_dict(read_json(path, 'machine'))

    def serialize(self) -> dict[str, Any]:
        data = _to_dict(self)
        data['batch_type'] = self.batch.value
        data['context_type'] = self.context.value
        return data


@dataclass(frozen=True)
class Resources:
    """What each job asks the batch system for, what runs before its tasks, and how its tasks share the job."""

    number_node: int = 1
    cpu_per_node: int = 1
    gpu_per_node: int = 0
    queue_name: str = ''
    group_size: int = 1  # tasks per job; 0: one job for every task
    custom_flags: list[str] = field(default_factory=list)
    strategy: dict[str, Any] = field(default_factory=dict)
    para_deg: int = 1
    source_list: list[str] = field(default_factory=list)
    module_purge: bool = False
    module_unload_list: list[str] = field(default_factory=list)
    module_list: list[str] = field(default_factory=list)
    envs: dict[str, Any] = field(default_factory=dict)
    prepend_script: list[str] = field(default_factory=list)
    append_script: list[str] = field(default_factory=list)
    wait_time: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)  # per batch system: SGE pe_name, job_name; Slurm ...
    walltime: str | None = None  # disbatch's own: HH:MM:SS for the job's header (and --walltime inside the job)

    def __post_init__(self) -> None:
        for name in ('number_node', 'cpu_per_node', 'para_deg'):
            if getattr(self, name) < 1:
                raise SubmissionError(f'resources: {name} must be 1 or more, not {getattr(self, name)}')
        for name in ('gpu_per_node', 'group_size', 'wait_time'):
            if getattr(self, name) < 0:
                raise SubmissionError(f'resources: {name} must be 0 or more, not {getattr(self, name)}')
        check_keys(self.strategy, _STRATEGY_KEYS, 'resources.strategy')
        check_keys(self.kwargs, _KWARGS_KEYS, 'resources.kwargs')

    @property
    def if_cuda_multi_devices(self) -> bool:
        return bool(self.strategy.get('if_cuda_multi_devices', True))

    @property
    def header_template_file(self) -> str | None:
        value = self.strategy.get('customized_script_header_template_file')
        return str(value) if value else None

    @classmethod
    def load_from_dict(cls, data: Mapping[str, Any]) -> Resources:
        return _from_dict(cls, data, 'resources')

    @classmethod
    def load_from_json(cls, path: str | Path) -> Resources:
        return cls.load_from_dict(read_json(path, 'resources'))

    def serialize(self) -> dict[str, Any]:
        return _to_dict(self)


_STRATEGY_KEYS = ('if_cuda_multi_devices', 'ratio_unfinished', 'customized_script_header_template_file')
_KWARGS_KEYS = ('pe_name', 'job_name', 'custom_gpu_line', 'gpu_usage', 'gpu_new_syntax', 'gpu_exclusive')


@dataclass(frozen=True)
class Task:
    """One command, run in its own directory (`task_work_path`, relative to the submission's work_base)."""

    command: str
    task_work_path: str = './'
    forward_files: list[str] = field(default_factory=list)
    backward_files: list[str] = field(default_factory=list)
    outlog: str | None = 'log'
    errlog: str | None = 'err'

    def __post_init__(self) -> None:
        if '\n' in self.command or '\r' in self.command:
            raise SubmissionError(f'task {self.command!r}: a command is one line (a task-file line)')
        if not self.command.strip():
            raise SubmissionError('task: the command is empty')
        if Path(self.task_work_path).is_absolute() or '..' in Path(self.task_work_path).parts:
            raise SubmissionError(
                f'task {self.command!r}: task_work_path {self.task_work_path!r} must lie in work_base'
            )

    @classmethod
    def load_from_dict(cls, data: Mapping[str, Any]) -> Task:
        return _from_dict(cls, data, 'task')

    @classmethod
    def load_from_json(cls, path: str | Path) -> Task:
        return cls.load_from_dict(read_json(path, 'task'))

    def serialize(self) -> dict[str, Any]:
        return _to_dict(self)


# ------------------------------------------------------------------------------------------------ loading

Loaded = TypeVar('Loaded')


def _profile_from_dict(data: Mapping[str, Any]) -> RemoteProfile:
    for key in _REFUSED_PROFILE_KEYS:
        if data.get(key):
            raise SubmissionError(
                f'machine.remote_profile: {key} is not supported: disbatch logs in with the system ssh '
                '(a key, the ssh agent, ~/.ssh/config)'
            )
    kept = {key: value for key, value in data.items() if key not in _REFUSED_PROFILE_KEYS}
    return _from_dict(RemoteProfile, kept, 'machine.remote_profile')


def read_json(path: str | Path, what: str) -> Any:
    try:
        with open(path, encoding='utf-8') as stream:
            return json.load(stream)
    except OSError as error:
        raise SubmissionError(f'{path}: cannot read the {what}: {error.strerror or error}') from None
    except json.JSONDecodeError as error:
        raise SubmissionError(f'{path}:{error.lineno}: not JSON: {error.msg}') from None


def _from_dict(cls: type[Loaded], data: Any, what: str) -> Loaded:
    """An instance of the dataclass `cls` from a JSON object: every key one of its fields, of the field's type."""
    if not isinstance(data, Mapping):
        raise SubmissionError(f'{what}: expected a JSON object, not {type(data).__name__}')
    fields = {item.name: item for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
    check_keys(data, tuple(fields), what)
    hints = typing.get_type_hints(cls)
    missing = [name for name, item in fields.items() if name not in data and _required(item)]
    if missing:
        raise SubmissionError(f'{what}: missing key {missing[0]!r}')
    for key, value in data.items():
        if not _has_type(value, hints[key]):
            raise SubmissionError(f'{what}: {key} must be {_type_name(hints[key])}, not {json.dumps(value)}')
    return cls(**data)


def check_keys(data: Mapping[str, Any], known: tuple[str, ...], what: str) -> None:
    for key in data:
        if key not in known:
            raise SubmissionError(f'{what}: unknown key {key!r} (known: {", ".join(known)})')


def _required(item: dataclasses.Field[Any]) -> bool:
    return item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's type (the JSON forms of an enum or a nested dataclass are str, dict)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, str)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_has_type(element, item) for element in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return ' or '.join(dict.fromkeys(_type_name(option) for option in typing.get_args(hint)))
    if hint is type(None):
        return 'null'
    if origin is list:
        return 'a list of strings'
    if origin is dict or dataclasses.is_dataclass(hint):
        return 'an object'
    if (isinstance(hint, type) and issubclass(hint, enum.Enum)) or hint is str:
        return 'a string'
    return {int: 'an integer', bool: 'true or false', float: 'a number'}.get(hint, str(hint))


def _to_dict(instance: Any) -> dict[str, Any]:
    """A dataclass as its JSON object (nested dataclasses too; enums by value)."""
    data: dict[str, Any] = {}
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _to_dict(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        data[item.name] = value
    return data
