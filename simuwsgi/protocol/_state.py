"""The connection state machine, as data.

Theory of operation
-------------------
A uwsgi connection carries one *request* (client -> server) and at most one *reply*
(server -> client), then the server closes (protocol.md §3: no keep-alive on
``--socket``). Each direction is tracked by its own :class:`State`:

* ``IDLE`` - nothing of this message yet;
* ``BODY`` - the head event went through; ``Data`` may follow (its amount is fixed
  by the head, or unbounded for replies that end at close);
* ``DONE`` - ``EndOfMessage`` went through;
* ``CLOSED`` - the connection ended for this direction: the peer's EOF, or for the
  reply direction ``NoReply`` (uWSGI's "close without a byte");
* ``ERROR`` - an exception was raised; nothing more can happen in that direction.

``TRANSITIONS`` below is the whole table: ``(state, event kind) -> new state``. Event
kinds are ``HEAD`` (any per-modifier head event), ``DATA``, ``END`` and ``NO_REPLY``
(reply direction only). Two extra rules tie the directions together:

1. the reply cannot start before the request head went through - the reply format
   depends on the request (a client cannot read a reply before sending; a server
   cannot answer a request it has not decoded), but the reply may start before the
   request body is complete;
2. only ``--puwsgi-socket`` servers (``persistent=True``) go back from ``DONE`` to
   ``IDLE`` (``Connection.start_next_cycle``), and only when uWSGI would keep the
   connection (see ``_connection``).

An illegal transition raises :class:`LocalProtocolError` (for what we send) naming
the event, our role and the state.

This models the connection handling of ``proto/uwsgi.c`` (one request, one reply,
close) and ``proto/puwsgi.c`` (several framed packets); it leaves out timeouts and the
``--http-socket`` protocol.
"""

from __future__ import annotations

import enum

__all__ = ["CLIENT", "SERVER", "TRANSITIONS", "Kind", "Role", "State"]


class Role(enum.Enum):
    """Which end of the connection we are."""

    CLIENT = "CLIENT"
    SERVER = "SERVER"

    def __repr__(self) -> str:
        return self.value


CLIENT = Role.CLIENT
SERVER = Role.SERVER


class State(enum.Enum):
    """State of one direction of a connection."""

    # Members are singletons: identity hashing is exact, and much cheaper than Enum's
    # Python-level __hash__ on the codec's hot path (TRANSITIONS lookups).
    __hash__ = object.__hash__

    IDLE = "IDLE"
    BODY = "BODY"
    DONE = "DONE"
    CLOSED = "CLOSED"
    ERROR = "ERROR"

    def __repr__(self) -> str:
        return self.value


class Kind(enum.Enum):
    """What an event does to the state of its direction."""

    __hash__ = object.__hash__

    HEAD = "head"
    DATA = "Data"
    END = "EndOfMessage"
    NO_REPLY = "NoReply"


TRANSITIONS: dict[State, dict[Kind, State]] = {
    State.IDLE: {Kind.HEAD: State.BODY, Kind.NO_REPLY: State.CLOSED},
    State.BODY: {Kind.DATA: State.BODY, Kind.END: State.DONE},
    State.DONE: {},
    State.CLOSED: {},
    State.ERROR: {},
}
