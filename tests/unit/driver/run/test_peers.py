"""The loop's engines as peers: which are silent, and when the next one could be."""

from __future__ import annotations

from disbatch.driver.run.peers import EnginePeers
from disbatch.protocol.messages import PROTOCOL_VERSION, Hello


def hello(number: int) -> Hello:
    return Hello('secret', PROTOCOL_VERSION, 'disbatch', f'node{number}', 100 + number, 1, 1, 'SSH0', f'launch{number}')


def test_the_silent_engines_and_the_earliest_heard_of_the_others() -> None:
    engines = EnginePeers()
    for number, heard in enumerate([5.0, 1.0, 9.0, 3.0]):
        engines.join(f'peer{number}'.encode(), hello(number), heard)
    silent, earliest = engines.heard_before(4.0)
    assert [engine.rank for engine in silent] == [1, 3]
    assert earliest == 5.0


def test_with_every_engine_silent_there_is_no_earliest_of_the_others() -> None:
    engines = EnginePeers()
    engines.join(b'peer', hello(0), 1.0)
    silent, earliest = engines.heard_before(2.0)
    assert [engine.rank for engine in silent] == [0]
    assert earliest is None
