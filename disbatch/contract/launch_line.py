"""The engine's launch line: the first line of an engine's stdin, written by its context once the driver listens.

`SECRET KEY HOST:PORT`: the run's secret (said in the engine's Hello), the driver's public CURVE key (Z85, 40
characters, no space) and the driver's endpoint. The context writes it (`contexts/nodes.py`), the engine reads
it (`engine/__main__.py`); nothing else spells it.
"""

from __future__ import annotations

from dataclasses import dataclass

CURVE_KEY_CHARACTERS = 40  # a CURVE key in Z85


@dataclass(frozen=True, slots=True)
class LaunchLine:
    secret: str
    server_key: str
    driver_address: str

    def format(self) -> str:
        return f'{self.secret} {self.server_key} {self.driver_address}'

    @classmethod
    def parse(cls, line: str) -> LaunchLine | None:
        """The line's three fields, or None when it is not a launch line."""
        fields = line.strip().split(' ')
        if len(fields) != 3 or len(fields[1]) != CURVE_KEY_CHARACTERS:
            return None
        return cls(*fields)
