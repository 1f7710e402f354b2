"""`-s` lists: what is refused, and the one-line reason (UsageError: exit 2)."""

from __future__ import annotations

import pytest

from disbatch.contexts.base import MAX_CORE_COUNT, Node, host_problem, parse_node_list
from disbatch.errors import UsageError


def test_good_lists_are_read_in_order_and_summed() -> None:
    assert parse_node_list(['node1:4,node-2.example.org:2', 'node1:1', '10.0.0.7:3', 'gpu_07:1']) == [
        Node('node1', 5), Node('node-2.example.org', 2), Node('10.0.0.7', 3), Node('gpu_07', 1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ('item', 'reason'),
    [
        ('x' * 300 + ':1', 'at most 253 characters'),
        ('a/b:1', 'labels of letters'),
        ('-oProxyCommand=touch_x:1', 'cannot begin with "-"'),
        ('a..b:1', 'labels of letters'),
        ('h\nb:1', 'labels of letters'),
        ('localhost:99999999999999999999', f'over {MAX_CORE_COUNT}'),
        ('localhost:0', 'core count of at least 1'),
    ],
)
def test_bad_items_name_the_flag_the_value_and_the_reason(item: str, reason: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_node_list([f'good:1,{item}'], '-s')
    message = str(raised.value)
    assert message.startswith(f'-s {item!r}: '), message
    assert reason in message, message


def test_a_63_character_label_is_a_host_and_64_is_not() -> None:
    assert host_problem('a' * 63 + '.b') == ''
    assert host_problem('a' * 64) != ''


def test_ssh_ends_its_options_before_the_host() -> None:
    from disbatch.contexts.launch import LaunchLimits
    from disbatch.contexts.nodes import NodePlan
    from disbatch.contexts.ssh import ssh_launcher_for

    command = ssh_launcher_for(LaunchLimits())(NodePlan('node2', 4, 1), ['python', '-m', 'disbatch.engine'])
    assert command[command.index('node2') - 1] == '--', command
    assert 'ConnectTimeout=30' in command, command  # a host that drops packets does not hold ssh for minutes
