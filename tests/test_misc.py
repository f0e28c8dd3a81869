"""The remaining helpers (simuwsgi/subsystems/misc.py)."""
from __future__ import annotations

import pytest

import simuwsgi
from _sim import b, run, start
from simuwsgi.subsystems.misc import NOT_SIMULATED


def test_info_and_logging_helpers(tmp_path):
    with start(tmp_path, "--http-socket", "127.0.0.1:0") as sim:
        code = ("u = uwsgi\nout = [list(u.mem()), u.logsize(), u.listen_queue(), "
                "u.set_warning_message('w' * 90), u.alarm('a', b'm'), u.log_this_request(), "
                "u.set_logvar('k', 'v'), u.get_logvar('k'), u.get_logvar('x'), "
                "u.add_var('A', 'B'), u.cl(), u.ready_fd(), u.suspend(), u.green_schedule(), "
                "u.async_sleep(1.5), u.offload()]")
        assert run(sim, code) == [[0, 0], 0, 0, True, None, None, None, b(b"v"), None,
                                  True, len(code), -1, True, True, b(b""), b(b"")]
        assert "- warning message must be max 80 chars, it will be truncated -" in sim.log
        assert run(sim, "uwsgi.listen_queue(1)") == ["exc", "ValueError", "unable to find socket 1"]


def test_errors_outside_async_and_websockets(tmp_path):
    with start(tmp_path) as sim:
        assert run(sim, "uwsgi.wait_fd_read(5)") == ["exc", "OSError", "unable to fd 5 to the event queue"]
        assert run(sim, "uwsgi.wait_fd_write(6, 1)")[2] == "unable to fd 6 to the event queue"
        assert run(sim, "uwsgi.chunked_read()")[2] == "unable to receive chunked part"
        assert run(sim, "uwsgi.websocket_handshake()")[2] == "unable to complete websocket handshake"
        assert run(sim, "uwsgi.embedded_data('foo')") == ["exc", "ValueError", "unable to find symbol foo"]
        assert run(sim, "uwsgi.add_var('k', 'v' * 5000)")[1] == "ValueError"


def test_extract_and_parsefile(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"payload")
    pkt = b"\x01\x00a\x02\x00bc"
    (tmp_path / "pkt").write_bytes(bytes([17]) + len(pkt).to_bytes(2, "little") + b"\x00" + pkt)
    with start(tmp_path) as sim:
        assert run(sim, "out = uwsgi.extract('data.bin')") == b(b"payload")
        assert run(sim, "out = list(uwsgi.parsefile('pkt').items())") == [[b(b"a"), b(b"bc")]]
        assert run(sim, "out = uwsgi.parsefile('missing')") is None
        r = sim.request("POST", "/", body=b"uwsgi.extract('missing')")
        assert r.status is None                     # the worker exited
        sim.advance(1)                              # the master reaps it at its next tick
        assert sim.trace.count("death") == 1


def test_not_simulated_names_exist_and_raise(tmp_path):
    with start(tmp_path) as sim:
        for name in NOT_SIMULATED:
            assert hasattr(sim.uwsgi, name)
            with pytest.raises(simuwsgi.NotSimulatedError, match=name):
                getattr(sim.uwsgi, name)()
