"""Fixtures for tests that run the real uWSGI server (see simuwsgi.modes.real.pytest_helpers)."""

from simuwsgi.modes.real.pytest_helpers import (  # noqa: F401  (fixture registration)
    real_uwsgi_binary,
    real_uwsgi_factory,
    real_uwsgi_pool,
)
