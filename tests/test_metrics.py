"""Metrics and SNMP values (simuwsgi/subsystems/metrics.py)."""
from __future__ import annotations

import pytest

from _sim import run, start


def test_without_metrics_functions_exist_and_fail_softly(tmp_path):
    with start(tmp_path) as sim:
        u = sim.uwsgi
        assert u.metric_get("x") == 0 and u.metric_set("x", 1) is None
        assert not hasattr(u, "snmp_set_counter32")


def test_custom_metric_operations(tmp_path):
    with start(tmp_path, "--metric", "name=jobs,initial_value=10", "--metric", "plain") as sim:
        code = ("u = uwsgi\nout = [u.metric_get('jobs'), u.metric_inc('jobs'), u.metric_inc('jobs', 5),"
                " u.metric_get('jobs'), u.metric_mul('jobs', 2), u.metric_div('jobs', 0),"
                " u.metric_div('jobs', -4), u.metric_get('jobs'), u.metric_set_max('jobs', 3),"
                " u.metric_set_min('jobs', 5), u.metric_get('jobs'), u.metric_set_min('jobs', 20),"
                " u.metric_get('jobs'), u.metric_dec('plain'), u.metric_get('plain'),"
                " u.metric_set('nope', 1), u.metric_set('plain', 2**63 - 1), u.metric_inc('plain'),"
                " u.metric_get('plain')]")
        assert run(sim, code) == [10, True, True, 16, True, None, True, -8, True, True, 3,
                                  True, 3, True, -1, None, True, True, -(2**63)]
        metrics = sim.inst.subsystems["metrics"]
        assert metrics.value("plain") == -(2**63)
        assert sim.trace.count("metric.set") >= 8


def test_builtin_metrics_are_read_only_and_follow_the_workers(tmp_path):
    with start(tmp_path, "--enable-metrics", "--processes", "2") as sim:
        run(sim, "pass")
        run(sim, "pass")
        m = sim.inst.subsystems["metrics"]
        assert m.value("worker.1.requests") + m.value("worker.2.requests") == 2
        assert sim.uwsgi.metric_set("worker.1.requests", 5) is None
        assert sim.uwsgi.metric_inc("rss_size") is None
        assert sim.uwsgi.metric_get("core.total_tx") == m.value("core.total_tx")


def test_snmp(tmp_path):
    with start(tmp_path, "--snmp") as sim:
        u = sim.uwsgi
        assert u.snmp_set_counter32(1, 2**32 + 7) is True
        assert sim.inst.subsystems["metrics"].snmp_values[0] == [1, 7]
        assert u.snmp_incr_counter64(2) is True and u.snmp_decr_counter64(2, 3) is True
        assert sim.inst.subsystems["metrics"].snmp_values[1] == [2, 2**64 - 2]
        assert u.snmp_set_gauge(0, 1) is None and u.snmp_set_gauge(101, 1) is None
        with pytest.raises(OverflowError):
            u.snmp_set_gauge(256, 1)
        with pytest.raises(TypeError, match="snmp_incr_gauge"):
            u.snmp_decr_gauge()
        assert u.snmp_set_community("c" * 80) is True
        assert "*** warning the supplied SNMP community string will be truncated to 72 chars ***" in sim.log
