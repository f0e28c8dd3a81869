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


class StallError(SimulationError):
    """App code ran longer than ``stall_timeout`` real seconds without yielding to the
    simulation (a CPU loop, a blocking real socket or lock). The message names the
    virtual process, its request and the app's stack at that moment."""


class AppLoadError(SimulationError):
    """The app did not load at start (no ``--wsgi-file``/``--module``, an import error,
    ``sys.exit`` at import).

    Without ``--need-app`` real uWSGI runs on "in full dynamic mode" and answers every
    request with a 500; ``Simulation(..., allow_no_app=True)`` keeps such an instance.
    ``what`` says what failed; ``log`` holds the uWSGI log lines up to the failure;
    ``exit_status`` is the status real uWSGI exits with (22 under ``--need-app``, the
    code given to ``sys.exit``), or ``None`` when it runs on.
    """

    def __init__(self, what: str, *, log: list[str], exit_status: int | None = None,
                 advice: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.advice = advice
        self.log = log
        self.exit_status = exit_status

    @property
    def cause(self) -> list[str]:
        """The log lines that tell why: the import's traceback (or ``failed to open``)
        through uWSGI's ``*** no app loaded`` line."""
        end = next((i for i in range(len(self.log) - 1, -1, -1)
                    if self.log[i].startswith("*** no app loaded")), None)
        if end is None:
            return []
        begin = end
        for i in range(end - 1, -1, -1):
            if self.log[i].startswith(_FAILURE_STARTS):
                begin = i
                break
        else:  # a module without the callable: uWSGI's one line says it
            if end and self.log[end - 1].startswith("unable to load app "):
                begin = end - 1
        return self.log[begin:end + 1]

    def __str__(self) -> str:
        head = f"{self.what}: {self.advice}" if self.advice else self.what
        return "\n".join([head, *self.cause])


#: The first log line of each way an app fails to load (``simuwsgi.server.apps``).
_FAILURE_STARTS = ("Traceback (most recent call last):", "failed to open python file",
                   'unable to find "')


class DeadlockError(SimulationError):
    """Every virtual process is blocked and no event is scheduled: nothing can progress."""


class NotSimulatedError(SimuwsgiError, NotImplementedError):
    """A uWSGI feature simuwsgi cannot reproduce (listed in the README)."""


class StartRefusedError(ConfigError):
    """Real uWSGI would refuse to start with these options: the message is the line it
    logs, ``status`` the exit status it ends with."""

    def __init__(self, message: str, *, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class OptionNotSimulatedError(ConfigError, NotSimulatedError):
    """``strict=True``: an option whose status is *not simulated* was given
    (``simuwsgi options --status not-simulated`` lists them)."""


class VirtualForkWarning(UserWarning):
    """The virtual fork shares an object of the app between processes (it cannot be
    copied); ``mode="fork"`` is exact."""
