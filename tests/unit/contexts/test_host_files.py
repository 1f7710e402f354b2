"""The Grid Engine, PBS and LSF allocation readers, from the formats those schedulers document, and detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.contexts import batch, host_files
from disbatch.contexts.launch import LaunchLimits
from disbatch.contexts.nodes import NodePlan
from disbatch.errors import ContextError

pytestmark = pytest.mark.timeout(10)

# Grid Engine sge_pe(5): "hostname, number of parallel processes, queue, processor range"
PE_HOSTFILE = 'node1.cluster 2 all.q@node1.cluster UNDEFINED\nnode2.cluster 4 all.q@node2.cluster 0,1\n'
# PBS: one line per MPI process (select=2:ncpus=4:mpiprocs=2); Torque nodes=2:ppn=3 repeats each host ppn times
PBS_NODEFILE = 'cn01\ncn01\ncn02\ncn02\n'
TORQUE_NODEFILE = 'n1\nn1\nn1\nn2\nn2\nn2\n'


def test_pe_hostfile() -> None:
    assert host_files.parse_pe_hostfile(PE_HOSTFILE) == [('node1.cluster', 2), ('node2.cluster', 4)]


def test_pe_hostfile_two_queues_on_one_host_are_summed() -> None:
    text = 'n1 2 all.q@n1 UNDEFINED\nn1 1 long.q@n1 UNDEFINED\nn2 1 all.q@n2 UNDEFINED\n'
    assert host_files.parse_pe_hostfile(text) == [('n1', 3), ('n2', 1)]


@pytest.mark.parametrize('text', ['', 'n1\n', 'n1 x all.q@n1 UNDEFINED\n', 'n1 0 all.q@n1 UNDEFINED\n'])
def test_bad_pe_hostfile(text: str) -> None:
    with pytest.raises(ContextError, match='PE_HOSTFILE'):
        host_files.parse_pe_hostfile(text)


def test_pbs_nodefile_one_line_per_slot() -> None:
    assert host_files.parse_slot_lines(PBS_NODEFILE, 'PBS_NODEFILE') == [('cn01', 2), ('cn02', 2)]
    assert host_files.parse_slot_lines(TORQUE_NODEFILE, 'PBS_NODEFILE') == [('n1', 3), ('n2', 3)]


def test_empty_nodefile() -> None:
    with pytest.raises(ContextError, match='LSB_DJOB_HOSTFILE lists no host'):
        host_files.parse_slot_lines('\n', 'LSB_DJOB_HOSTFILE')


def test_lsb_mcpu_hosts() -> None:
    # bsub -n 6 -R "span[ptile=2]": LSB_MCPU_HOSTS="hostA 2 hostB 2 hostC 2"
    assert host_files.parse_lsb_mcpu_hosts('hostA 2 hostB 2 hostC 2') == [('hostA', 2), ('hostB', 2), ('hostC', 2)]


@pytest.mark.parametrize('text', ['', 'hostA', 'hostA 2 hostB', 'hostA two', 'hostA 0'])
def test_bad_lsb_mcpu_hosts(text: str) -> None:
    with pytest.raises(ContextError, match='LSB_MCPU_HOSTS'):
        host_files.parse_lsb_mcpu_hosts(text)


def test_plan_slots_default_one_core_per_task() -> None:
    assert host_files.plan_slots([('a', 4), ('b', 2)], None, None, False) == [NodePlan('a', 4, 1), NodePlan('b', 2, 1)]


def test_plan_slots_with_c_and_t() -> None:
    assert host_files.plan_slots([('a', 4), ('b', 3)], 2.0, None, False) == [NodePlan('a', 2, 2), NodePlan('b', 1, 2)]
    assert host_files.plan_slots([('a', 4)], None, 1, False) == [NodePlan('a', 1, 4)]
    assert host_files.plan_slots([('a', 2)], 0.5, None, True) == [NodePlan('a', 4, 1)]


def test_plan_slots_fill_uses_the_cores_the_scheduler_reports() -> None:
    hosts = [('a', 2), ('b', 2)]
    cores = {'a': 8, 'b': 8}
    assert host_files.plan_slots(hosts, None, None, False, cores) == [NodePlan('a', 2, 4), NodePlan('b', 2, 4)]
    assert host_files.plan_slots(hosts, None, None, True, cores) == [NodePlan('a', 8, 1), NodePlan('b', 8, 1)]


def test_plan_slots_too_few_cores() -> None:
    with pytest.raises(ContextError, match='node a: 1 core'):
        host_files.plan_slots([('a', 1)], 2.0, None, False)


def test_detection_order() -> None:
    everything = {'SLURM_JOB_ID': '1', 'PE_HOSTFILE': 'f', 'PBS_NODEFILE': 'f', 'LSB_MCPU_HOSTS': 'h 1'}
    assert batch.detect(everything) == 'slurm'
    del everything['SLURM_JOB_ID']
    assert batch.detect(everything) == 'sge'
    del everything['PE_HOSTFILE']
    assert batch.detect(everything) == 'pbs'
    del everything['PBS_NODEFILE']
    assert batch.detect(everything) == 'lsf'
    assert batch.detect({'LSB_DJOB_HOSTFILE': 'f'}) == 'lsf'
    assert batch.detect({'PATH': '/bin'}) is None


def test_job_ids() -> None:
    environ = {'JOB_ID': '7', 'PBS_JOBID': '8.server', 'LSB_JOBID': '9', 'SLURM_JOBID': '6'}
    assert [batch.job_id(kind, environ) for kind in ('slurm', 'sge', 'pbs', 'lsf')] == ['6', '7', '8.server', '9']


def test_read_allocation_from_files(tmp_path: Path) -> None:
    (tmp_path / 'pe').write_text(PE_HOSTFILE)
    (tmp_path / 'nodes').write_text(PBS_NODEFILE)
    assert batch.read_allocation('sge', {'PE_HOSTFILE': str(tmp_path / 'pe')})[0] == ('node1.cluster', 2)
    assert batch.read_allocation('pbs', {'PBS_NODEFILE': str(tmp_path / 'nodes')}) == [('cn01', 2), ('cn02', 2)]
    assert batch.read_allocation('lsf', {'LSB_DJOB_HOSTFILE': str(tmp_path / 'nodes')}) == [('cn01', 2), ('cn02', 2)]
    assert batch.read_allocation('lsf', {'LSB_MCPU_HOSTS': 'x 1', 'LSB_DJOB_HOSTFILE': '/nonexistent'}) == [('x', 1)]
    with pytest.raises(ContextError, match='PBS_NODEFILE=/nonexistent: cannot read it'):
        batch.read_allocation('pbs', {'PBS_NODEFILE': '/nonexistent'})
    with pytest.raises(ContextError, match='PE_HOSTFILE is not set'):
        batch.read_allocation('sge', {})


def test_launchers_quote_the_engine_command() -> None:
    plan = NodePlan('node2', 2, 1)
    assert batch.qrsh_launcher(plan, ['python', '--run=a b']) == ['qrsh', '-inherit', 'node2', "python '--run=a b'"]
    assert batch.blaunch_launcher(plan, ['python', '-m'])[:2] == ['blaunch', 'node2']
    ssh = batch.ssh_or_local_for(LaunchLimits(connect_timeout=7.5))(plan, ['python'])
    assert ssh[0] == 'ssh' and 'ConnectTimeout=8' in ssh and ssh[ssh.index('node2') - 1] == '--', ssh


def test_sge_context_uses_qrsh_and_retires_nothing(tmp_path: Path) -> None:
    (tmp_path / 'pe').write_text('node1 2 all.q@node1 UNDEFINED\nnode2 2 all.q@node2 UNDEFINED\n')
    environ = {'PE_HOSTFILE': str(tmp_path / 'pe'), 'JOB_ID': '5', 'PATH': ''}
    context, _ = batch.batch_context('sge', environ, 'J5', None, None, False, None, str(tmp_path / 'log'))
    assert [(plan.host, plan.slots) for plan in context.plans] == [('node1', 2), ('node2', 2)]
    assert context.launcher is batch.qrsh_launcher
    assert context.retirement.command is None


def test_pbs_context_retires_with_pbs_release_nodes_when_present(tmp_path: Path) -> None:
    (tmp_path / 'nodes').write_text(PBS_NODEFILE)
    (tmp_path / 'pbs_release_nodes').write_text('#!/bin/sh\n')
    (tmp_path / 'pbs_release_nodes').chmod(0o755)
    environ = {'PBS_NODEFILE': str(tmp_path / 'nodes'), 'PBS_JOBID': '8', 'NCPUS': '4', 'PATH': str(tmp_path)}
    context, _ = batch.batch_context('pbs', environ, 'J8', None, None, True, None, str(tmp_path / 'log'))
    assert [(plan.host, plan.slots) for plan in context.plans] == [('cn01', 4), ('cn02', 4)]
    assert context.retirement.command == batch.PBS_RETIRE
    context, _ = batch.batch_context('pbs', environ, 'J8', None, None, False, '', str(tmp_path / 'log'))
    assert context.retirement.command is None
    assert [(plan.host, plan.slots) for plan in context.plans] == [('cn01', 2), ('cn02', 2)]
