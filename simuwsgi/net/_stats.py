"""The ``--stats`` server on a real socket (``simuwsgi serve``, ``Cluster.expose``).

Models the master's stats server of 2.0.30 (``core/stats.c``): on each connection it
writes the document (``simuwsgi.server.stats``) and closes; with ``--stats-http`` it
first waits for the client's request and prefixes an HTTP/1.0 head; ``--stats-minified``
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
    http = inst.opts.flag("stats-http")
    async with stream:
        try:
            if http:
                await stream.receive_some(4096)
            encode = encode_stats_http if http else encode_stats
            await stream.send_all(encode(document(inst),
                                         minified=inst.opts.flag("stats-minified")))
        except trio.BrokenResourceError:
            pass  # the client went away: uWSGI ignores the failed write too
