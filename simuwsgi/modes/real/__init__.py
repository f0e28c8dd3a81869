"""Harness for the real uWSGI server (pyuwsgi), used by differential tests."""

from ._mode import RealRequest, RealRun, RealRunTimeout, real_argv
from ._server import (
    HARNESS_MARK,
    HARNESS_OPTION_NAMES,
    RealUwsgi,
    RealUwsgiError,
    ReloadMark,
    Response,
    find_uwsgi_binary,
    free_port,
    uwsgi_version,
)

__all__ = [
    "HARNESS_MARK",
    "HARNESS_OPTION_NAMES",
    "RealRequest",
    "RealRun",
    "RealRunTimeout",
    "RealUwsgi",
    "RealUwsgiError",
    "ReloadMark",
    "Response",
    "find_uwsgi_binary",
    "free_port",
    "real_argv",
    "uwsgi_version",
]
