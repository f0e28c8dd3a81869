"""A connection between virtual nodes that carries raw bytes both ways.

1.4's generic client (``uwsgi.send_message``, ``simuwsgi.network._messages``) writes any
packet and reads whatever comes back; :class:`RawExchange` is the virtual network's
:class:`~simuwsgi.network._remote.Exchange` (connect, send, wait, with the same timeouts
and failures) keeping the reply's bytes instead of decoding them.
"""

from __future__ import annotations

from ._remote import Exchange

__all__ = ["RawExchange"]


class RawExchange(Exchange):
    """An :class:`Exchange` whose reply is the raw bytes the remote sent before closing
    (its ``connected`` tells a refused or unanswered connect from a missing reply)."""

    #: What the remote sent before it closed (None: nothing came within the timeout).
    reply: bytes | None = None

    def _reply(self, data: bytes) -> None:
        if not self.finished:
            self._timer.cancel()
            self.reply = data
            self._finish(True, data)
