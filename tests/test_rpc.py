"""RPC (simuwsgi/subsystems/rpc.py)."""
from __future__ import annotations

import pytest

import _diff
import simuwsgi
from _sim import b, run, start

FUNCS = "\ndef echo(*a):\n    return b'|'.join(a) or b'none'\nuwsgi.register_rpc('echo', echo)\n"


def test_master_registration_is_inherited_worker_registration_private(tmp_path):
    with start(tmp_path, "--processes", "2", extra=FUNCS) as sim:
        assert "registered shared/inherited RPC function \"echo\"" in sim.log
        w = run(sim, "uwsgi.register_rpc('mine', lambda: b'w%d' % uwsgi.worker_id())\n"
                     "out = [uwsgi.worker_id(), uwsgi.rpc_list(), uwsgi.call(b'mine')]")
        wid = w[0]
        assert w[1] == [b(b"echo"), b(b"mine")] and w[2] == b(b"w%d" % wid)
        rpc = sim.inst.subsystems["rpc"]
        other = 3 - wid
        assert [e.name for e in rpc.table(other)] == [b"echo"]
        assert [e.name for e in rpc.table(0)] == [b"echo"]


def test_argument_truncation_and_nul_names(tmp_path):
    with start(tmp_path, extra=FUNCS) as sim:
        out = run(sim, "out = [len(uwsgi.call(b'echo', b'x' * 65537)), "
                       "uwsgi.call(b'echo\\0junk', b'a'), uwsgi.call(b'echo', *[b'a'] * 256)]")
        assert out == [1, b(b"a"), b(b"none")]


def test_remote_rpc_without_network(tmp_path):
    with start(tmp_path, extra=FUNCS) as sim:
        with pytest.raises(simuwsgi.NotSimulatedError, match="127.0.0.1:3031"):
            sim.uwsgi.rpc("127.0.0.1:3031", b"echo")
        assert sim.uwsgi.rpc(7, b"echo", b"z") == b"z"     # a non-string node is local


def test_table_full(tmp_path):
    with start(tmp_path, "--rpc-max", "2", extra=FUNCS) as sim:
        assert sim.uwsgi.register_rpc("two", print) is True
        with pytest.raises(ValueError, match="unable to register rpc function"):
            sim.uwsgi.register_rpc("three", print)
        assert sim.uwsgi.register_rpc("two", print) is True


@pytest.mark.real
def test_rpc_matches_real_uwsgi():
    _diff.compare("/rpc")
