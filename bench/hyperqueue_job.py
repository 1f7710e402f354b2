"""Run a task file through HyperQueue, as its Python API users do: `python hyperqueue_job.py TASKFILE SLOTS DIR`.

Started by the bench with the interpreter of the peers' venv (bench/peers.py), never imported by the bench itself:
it needs only the `hyperqueue` package (0.27 ships its server and worker inside the wheel). A local cluster (one
server, one worker of SLOTS cores, its files in DIR) gets one job of one program task per line (`/bin/bash -c
LINE`, output discarded as ours keeps only snippets); the script waits for the job, stops the cluster and exits 0
when every task succeeded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hyperqueue import Job, LocalCluster  # type: ignore[import-not-found]
from hyperqueue.cluster import WorkerConfig  # type: ignore[import-not-found]


def main(task_file: str, slots: int, server_directory: str) -> int:
    lines = [line for line in Path(task_file).read_text(encoding='utf-8').splitlines() if line.strip()]
    with LocalCluster(server_directory, WorkerConfig(cores=slots)) as cluster:
        client = cluster.client()
        job = Job()
        for line in lines:
            job.program(['/bin/bash', '-c', line], stdout=None, stderr=None)
        submitted = client.submit(job)
        ok = client.wait_for_jobs([submitted], raise_on_error=False)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], int(sys.argv[2]), str(Path(sys.argv[3]).absolute())))
