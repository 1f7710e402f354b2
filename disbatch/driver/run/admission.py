"""Who may join the run: the driver loop asks `Admission` about every hello before it lets a peer in.

A hello must carry the run's secret (else it is refused in the driver log only, and not answered: the peer may be
anyone who found the port and the key) and speak this run's wire protocol (else the refusal is reported, in the
log and on stderr, and the peer is sent an `Abort` saying why, so it exits at once with the reason in its log).
A hello that does not decode at all is read as far as every version's hellos agree (`codec.read_greeting`), so an
engine of a much older or newer disbatch is refused the same clear way instead of being dropped without a word.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from disbatch.driver.run.peers import Outbox
from disbatch.driver.run.settings import DriverSettings
from disbatch.protocol import codec
from disbatch.protocol.messages import PROTOCOL_VERSION, Abort, ContextHello, Hello, this_software

log = logging.getLogger('disbatch.driver')


class Admission:
    def __init__(self, settings: DriverSettings, outbox: Outbox, report: Callable[[str], None]) -> None:
        self.settings = settings
        self.outbox = outbox
        self.report = report
        self.refused: set[str] = set()  # launch ids of the engines refused for their protocol version

    def refuses_engine(self, peer: bytes, hello: Hello) -> bool:
        """Whether the engine saying `hello` is refused (then it has been said and answered)."""
        if not self.settings.knows_secret(hello.secret):
            log.warning('refused an engine that does not know the run secret (%s, pid %d)', hello.hostname, hello.pid)
            return True
        if not self._refuses_version(peer, f'engine on {hello.hostname}', hello.protocol_version, hello.software):
            return False
        if hello.launch_id:
            self.refused.add(hello.launch_id)  # its exit, which follows, is no news
        return True

    def refuses_context(self, peer: bytes, hello: ContextHello) -> bool:
        """Whether the context process saying `hello` is refused (then it has been said and answered)."""
        if not self.settings.knows_secret(hello.secret):
            log.warning('refused a context that does not know the run secret')
            return True
        who = f'context {hello.label or hello.kind}'
        return self._refuses_version(peer, who, hello.protocol_version, hello.software)

    def on_unreadable(self, peer: bytes, payload: bytes, error: codec.CodecError) -> None:
        """A message that does not decode, from a peer that is no engine of the run: a hello (of another protocol
        version) is refused; anything else dropped."""
        greeting = codec.read_greeting(payload)
        if greeting is None:
            log.warning('dropped a malformed message from peer %s: %s', peer.hex(), error)
        elif not self.settings.knows_secret(greeting.secret):
            log.warning('refused a peer that does not know the run secret (%s %s)', greeting.tag, greeting.name)
        else:
            engine = greeting.tag == Hello.TAG
            who = f'engine on {greeting.name}' if engine else f'context {greeting.name or "(no label)"}'
            if not self._refuses_version(peer, who, greeting.protocol_version, greeting.software):
                self._refuse(peer, f'{who} refused: its {greeting.tag} is malformed ({error})')

    def _refuses_version(self, peer: bytes, who: str, version: int, software: str) -> bool:
        refusal = version_refusal(who, version, software)
        if refusal is not None:
            self._refuse(peer, refusal)
        return refusal is not None

    def _refuse(self, peer: bytes, reason: str) -> None:
        self.report(reason)
        self.outbox.put(peer, Abort(reason))


def version_refusal(who: str, version: int, software: str) -> str | None:
    """Why a peer (`who`: 'engine on node2', 'context SSH0') that speaks wire protocol `version` is refused; None
    when it speaks this run's."""
    if version == PROTOCOL_VERSION:
        return None
    theirs = software or 'a disbatch from before protocol versions'
    return (
        f'{who} refused: it speaks wire protocol {version} ({theirs}), this run speaks {PROTOCOL_VERSION} '
        f'({this_software()}); run the same disbatch on every node'
    )
