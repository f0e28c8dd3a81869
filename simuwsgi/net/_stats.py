"""The ``--stats`` server on a real socket (``simuwsgi serve``, ``Cluster.expose``).

Models the master's stats server of 2.0.30 (``core/stats.c``): on each connection it
writes the document (``simuwsgi.server.stats``) and closes; with ``--stats-http`` it
first waits for the client's request (``--socket-timeout`` seconds at most) and
prefixes an HTTP/1.0 head; ``--stats-minified``
drops the whitespace. The document is built when the connection is accepted, from the
simulation as it stands then.
"""

from __future__ import annotations

from typing import Any

import trio

from ..protocol import encode_stats, encode_stats_http
from ..server.stats import document

__all__ = ["serve_stats"]


async def serve_stats(listener: trio.SocketListener, inst: Any) -> None:
    """Answer every connection to ``listener`` with ``inst``'s stats document."""
    async with trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            nursery.start_soon(_answer, stream, inst)


async def _answer(stream: trio.SocketStream, inst: Any) -> None:
    """``uwsgi_send_stats``: with ``--stats-http`` the client's request is awaited for
    ``--socket-timeout`` seconds (``uwsgi_send_http_stats``); a client that sends nothing
    in that time, or closes, is closed without an answer. Each write waits as long."""
    http = inst.opts.flag("stats-http")
    timeout = float(inst.opts.int("socket-timeout", 4) or 4)
    async with stream:
        try:
            if http:
                request = b""
                with trio.move_on_after(timeout):
                    request = await stream.receive_some(4096)
                if not request:
                    return
            encode = encode_stats_http if http else encode_stats
            with trio.move_on_after(timeout):
                await stream.send_all(encode(document(inst),
                                             minified=inst.opts.flag("stats-minified")))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: uWSGI ignores the failed write too
