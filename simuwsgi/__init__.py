"""simuwsgi: a deterministic discrete-event simulator of uWSGI.

Run a uWSGI app (its timers, cron, signals, spooler, mules, caches, locks...) in
virtual time from the same uWSGI options you deploy with, and compare it with the real
server. Start with ``Simulation``.
"""

from ._errors import AppLoadError as AppLoadError
from ._errors import ConfigError as ConfigError
from ._errors import DeadlockError as DeadlockError
from ._errors import NotSimulatedError as NotSimulatedError
from ._errors import OptionNotSimulatedError as OptionNotSimulatedError
from ._errors import SimulationError as SimulationError
from ._errors import SimuwsgiError as SimuwsgiError
from ._errors import StallError as StallError
from ._errors import StartRefusedError as StartRefusedError
from . import explore as explore
from . import real_time as real_time
from .cluster import Cluster as Cluster
from .server.config import Options as Options
from .scenario import Scenario as Scenario
from .scenario import load_scenario as load_scenario
from .simulation import Simulation as Simulation
from ._core.trace import Record as Record
from ._core.trace import Trace as Trace
from .server.workers import Response as Response

__version__ = "0.1.0"

__all__ = [
    "AppLoadError",
    "Cluster",
    "ConfigError",
    "DeadlockError",
    "NotSimulatedError",
    "OptionNotSimulatedError",
    "Options",
    "Record",
    "Response",
    "Scenario",
    "Simulation",
    "SimulationError",
    "SimuwsgiError",
    "StallError",
    "StartRefusedError",
    "Trace",
    "explore",
    "load_scenario",
    "real_time",
]
