"""Differential: ``uwsgi`` hooks set in a worker vs in the master, on real uWSGI 2.0.30."""

from __future__ import annotations

import time

import pytest
from test_isolation import (
    HOOK_CASES,
    HOOK_OPTIONS,
    MASTER_LINES,
    WORKER_ONLY_LINES,
    hook_lines,
    hooks_app,
)

from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi

pytestmark = pytest.mark.real


@pytest.mark.parametrize(("at_import", "extra", "where"), HOOK_CASES)
def test_real_spooler_and_mules_see_only_the_hooks_set_before_they_were_forked(
        tmp_path, at_import, extra, where):
    require_real_uwsgi()
    expected = WORKER_ONLY_LINES if where == "worker" else MASTER_LINES
    with RealUwsgi([*extra, *HOOK_OPTIONS], app_dir=hooks_app(tmp_path, at_import),
                   max_lifetime=60) as u:
        for path in ("/set", "/spool", "/mule"):
            resp = u.get(path)
            assert resp.status == 200, u.log_text()[-2000:]
        deadline = time.monotonic() + 10
        while hook_lines(u.log) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hook_lines(u.log) == expected, u.log_text()[-3000:]
