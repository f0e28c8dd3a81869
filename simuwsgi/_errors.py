"""The error hierarchy of simuwsgi itself.

Errors raised *inside the ``uwsgi`` facade* are exactly the builtins real uWSGI raises
(``ValueError``, ``TypeError``, ...). These classes are for the simulator's own
failures: a bad option, a deadlock, a virtual process that crashed.
"""

from __future__ import annotations


class SimuwsgiError(Exception):
    """Root of every error simuwsgi raises on its own behalf."""


class ConfigError(SimuwsgiError, ValueError):
    """A uWSGI option uWSGI itself would refuse (unknown name, bad value)."""


class SimulationError(SimuwsgiError, RuntimeError):
    """The simulated instance failed in a way real uWSGI would crash on.

    The message names the virtual process and the virtual time.
    """


class DeadlockError(SimulationError):
    """Every virtual process is blocked and no event is scheduled: nothing can progress."""


class NotSimulatedError(SimuwsgiError, NotImplementedError):
    """A uWSGI feature simuwsgi cannot reproduce (listed in the README)."""


class VirtualForkWarning(UserWarning):
    """The virtual fork shares an object of the app between processes (it cannot be
    copied); ``mode="fork"`` is exact."""
