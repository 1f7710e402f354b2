"""Each batch system's header, submit output, queue listing and cancel command (pure)."""

from __future__ import annotations

import pytest

from disbatch.dispatch.batch_systems import JobPhase, batch_system, walltime_seconds
from disbatch.dispatch.submission_parts import BatchType, Resources
from disbatch.errors import SubmissionError

RESOURCES = Resources(number_node=2, cpu_per_node=4, gpu_per_node=1, queue_name='q', walltime='1:30:00')


def test_slurm() -> None:
    slurm = batch_system(BatchType.SLURM)
    header = slurm.header(RESOURCES, 'job0', 'job0.a1.log')
    assert header == [
        '#SBATCH --job-name=job0',
        '#SBATCH --output=job0.a1.log',
        '#SBATCH --nodes=2',
        '#SBATCH --ntasks-per-node=4',
        '#SBATCH --gres=gpu:1',
        '#SBATCH --partition=q',
        '#SBATCH --time=1:30:00',
    ]
    assert slurm.submit_command('job0.a1.sh', 'log') == 'sbatch --parsable job0.a1.sh'
    assert slurm.job_id('1234\n') == '1234'
    assert slurm.job_id('1234;cluster\n') == '1234'
    with pytest.raises(ValueError):
        slurm.job_id('')
    listing = '12 RUNNING\n13 PENDING\n14 COMPLETED\n15 COMPLETING\n99 RUNNING\n'
    assert slurm.phases(listing, ['12', '13', '14', '15', '16']) == {
        '12': JobPhase.RUNNING,
        '13': JobPhase.WAITING,
        '14': JobPhase.ENDED,
        '15': JobPhase.RUNNING,
        '16': JobPhase.ENDED,  # not listed any more
    }
    assert slurm.cancel_command(['12', '13']) == 'scancel 12 13'


def test_grid_engine() -> None:
    sge = batch_system(BatchType.SGE)
    header = sge.header(Resources(number_node=2, cpu_per_node=4, kwargs={'pe_name': 'smp'}), 'job1', 'l')
    assert '#$ -pe smp 8' in header and '#$ -o l' in header and '#$ -cwd' in header
    assert sge.job_id('77\n') == '77'
    listing = (
        'job-ID  prior   name       user         state submit/start at     queue                          slots\n'
        '-----------------------------------------------------------------------------------------------------\n'
        '     77 0.55500 job0       root         r     12/07/2026 22:23:30 all.q@node1                        4\n'
        '     78 0.00000 job1       root         qw    12/07/2026 22:23:29                                    4\n'
        '     79 0.00000 job2       root         Eqw   12/07/2026 22:23:29                                    4\n'
    )
    assert sge.phases(listing, ['77', '78', '79', '80']) == {
        '77': JobPhase.RUNNING,
        '78': JobPhase.WAITING,
        '79': JobPhase.ENDED,
        '80': JobPhase.ENDED,
    }
    assert sge.leftover_command(['79']) == 'qdel 79 >/dev/null 2>&1; true'
    assert batch_system(BatchType.SLURM).leftover_command(['79']) is None


def test_pbs_and_torque() -> None:
    pbs = batch_system(BatchType.PBS)
    assert '#PBS -l select=2:ncpus=4:ngpus=1' in pbs.header(RESOURCES, 'j', 'l')
    torque = batch_system(BatchType.TORQUE)
    assert '#PBS -l nodes=2:ppn=4:gpus=1' in torque.header(RESOURCES, 'j', 'l')
    assert pbs.job_id('4242.server\n') == '4242.server'
    listing = (
        'Job id            Name             User              Time Use S Queue\n'
        '----------------  ---------------- ----------------  -------- - -----\n'
        '4242.server       job0             me                00:00:01 R workq\n'
        '4243.server       job1             me                       0 Q workq\n'
        '4244.server       job2             me                00:00:09 C workq\n'
    )
    assert pbs.phases(listing, ['4242.server', '4243.server', '4244.server']) == {
        '4242.server': JobPhase.RUNNING,
        '4243.server': JobPhase.WAITING,
        '4244.server': JobPhase.ENDED,
    }


def test_lsf() -> None:
    lsf = batch_system(BatchType.LSF)
    header = lsf.header(RESOURCES, 'j', 'l')
    assert '#BSUB -n 8' in header and '#BSUB -R "span[ptile=4]"' in header and '#BSUB -W 1:30' in header
    assert lsf.job_id('Job <512> is submitted to queue <normal>.\n') == '512'
    assert lsf.phases('512 RUN\n513 PEND\n514 DONE\n', ['512', '513', '514', '515']) == {
        '512': JobPhase.RUNNING,
        '513': JobPhase.WAITING,
        '514': JobPhase.ENDED,
        '515': JobPhase.ENDED,
    }
    assert lsf.submit_command('job0.a1.sh', 'l') == 'bsub < job0.a1.sh'


def test_shell() -> None:
    shell = batch_system(BatchType.SHELL)
    assert shell.header(RESOURCES, 'j', 'l') == []
    assert shell.job_id('4321\n') == '4321'
    assert shell.phases('4321\n', ['4321', '4322']) == {'4321': JobPhase.RUNNING, '4322': JobPhase.ENDED}


def test_walltime() -> None:
    assert walltime_seconds('24:00:00') == 86400
    assert walltime_seconds('1-00:00:30') == 86430
    assert walltime_seconds('90:00') == 5400
    with pytest.raises(SubmissionError, match="walltime '1h'"):
        walltime_seconds('1h')
