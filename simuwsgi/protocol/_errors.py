"""Errors of the uwsgi wire codec.

uWSGI itself has no error packet: every failure is "close the connection without a
byte" (protocol.md §3). The codec therefore reports malformed input as an exception
that tells the driver to do exactly that, and says *whose* fault it was, in the h11
manner:

* :class:`RemoteProtocolError` - the peer sent bytes that uWSGI would refuse (the
  message states uWSGI's rule and shows the offending value). A server driver answers
  it with ``send(NoReply())`` / closing the socket.
* :class:`LocalProtocolError` - the caller asked the codec to do something illegal
  (send an event in the wrong state, encode a value that does not fit the format).

Both derive from :class:`ProtocolError`, which is a :class:`ValueError` and also a
:class:`~simuwsgi._errors.SimuwsgiError`, the package-wide error root.
"""

from __future__ import annotations

from typing import Literal

from simuwsgi._errors import SimuwsgiError

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "SpoolFileError",
]


class ProtocolError(SimuwsgiError, ValueError):
    """Root of every error raised by :mod:`simuwsgi.protocol`."""


class LocalProtocolError(ProtocolError):
    """We (the caller of the codec) tried to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that uWSGI would refuse; the only answer is to close."""


class SpoolFileError(RemoteProtocolError):
    """A spool file the spooler cannot run.

    ``disposition`` says what uWSGI's spooler does with the file
    (``core/spooler.c``, ``spooler_manage_task``):

    * ``"skip"``: shorter than the 4-byte header - the writer may still be busy, the
      file is left alone and retried at the next scan;
    * ``"delete"``: the header announces more vars bytes than the file holds - the
      file is unlinked without running the task.
    """

    def __init__(self, message: str, *, disposition: Literal["skip", "delete"]) -> None:
        super().__init__(message)
        self.disposition: Literal["skip", "delete"] = disposition
