"""The public namespace: curated, sorted, importable; errors inherit the builtins."""

from __future__ import annotations

import simuwsgi


def test_all_is_sorted_and_every_name_resolves():
    assert simuwsgi.__all__ == sorted(simuwsgi.__all__)
    for name in simuwsgi.__all__:
        assert getattr(simuwsgi, name) is not None


def test_error_hierarchy():
    assert issubclass(simuwsgi.ConfigError, (simuwsgi.SimuwsgiError, ValueError))
    assert issubclass(simuwsgi.DeadlockError, simuwsgi.SimulationError)
    assert issubclass(simuwsgi.SimulationError, RuntimeError)
    assert issubclass(simuwsgi.NotSimulatedError, NotImplementedError)
    assert issubclass(simuwsgi.StartRefusedError, simuwsgi.ConfigError)
    assert issubclass(simuwsgi.OptionNotSimulatedError, simuwsgi.NotSimulatedError)
