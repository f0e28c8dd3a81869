"""The other two ways to run a scenario: ``fork`` (each virtual process a forked OS
process, in lockstep with the simulation) and ``real`` (the real uWSGI server)."""
