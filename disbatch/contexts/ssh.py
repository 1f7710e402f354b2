"""The SSH context: `-s host1:N,host2:M` (or DISBATCH_SSH_NODELIST). Engines on this machine start directly; on
other hosts through the system `ssh` (password-less login, the same paths on every host: a shared file system).
"""

from __future__ import annotations

import shlex
import socket

from disbatch.contexts.base import Node, is_this_machine, slots_for
from disbatch.contexts.launch import LaunchLimits
from disbatch.contexts.nodes import NO_RESOURCES, EngineResources, Launcher, NodeContext, NodePlan
from disbatch.contexts.retire import Retirement


def ssh_options(limits: LaunchLimits) -> list[str]:
    """Never ask for a password; give up on a host that does not answer after the connect timeout (a host that drops
    packets would otherwise hold ssh for the kernel's two minutes, or for ever once connected and silent)."""
    return ['-o', 'BatchMode=yes', '-o', f'ConnectTimeout={limits.ssh_connect_timeout}']


def ssh_launcher_for(limits: LaunchLimits) -> Launcher:
    def launcher(plan: NodePlan, engine: list[str]) -> list[str]:
        if is_this_machine(plan.host):
            return engine
        return ['ssh', *ssh_options(limits), '--', plan.host, shlex.join(engine)]  # '--': the host is never an option

    return launcher


def ssh_context(
    label: str,
    nodes: list[Node],
    cpus_per_task: float,
    tasks_per_node: int | None,
    retire_command: str | None,
    log_path: str,
    resources: EngineResources = NO_RESOURCES,
    limits: LaunchLimits | None = None,
) -> NodeContext:
    """Plan one engine per node (`localhost` is named by this machine's hostname, as in the reference)."""
    plans = []
    for node in nodes:
        slots, cores_per_task = slots_for(node.cores, cpus_per_task, tasks_per_node)
        host = socket.gethostname() if node.host == 'localhost' else node.host
        plans.append(NodePlan(host, slots, cores_per_task))
    retirement = Retirement(retire_command, [plan.host for plan in plans], log_path)
    limits = limits or LaunchLimits()
    return NodeContext(label, plans, ssh_launcher_for(limits), retirement, resources=resources, limits=limits)
