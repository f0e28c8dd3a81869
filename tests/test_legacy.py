"""Names removed before uWSGI 2.0: absent by default (test_api_names), installed with
their 1.x meaning by ``Simulation(..., legacy=True)`` (``simuwsgi/subsystems/legacy.py``)."""

from __future__ import annotations

import pytest
from _sim import EXEC_APP, b, run

import simuwsgi
from simuwsgi import Simulation
from simuwsgi.subsystems.legacy import LEGACY_NAMES


def _start(tmp_path, *options: str, legacy: bool = True) -> Simulation:
    (tmp_path / "app.py").write_text(EXEC_APP)
    sim = Simulation([*options, "--wsgi-file", "app.py"], app_dir=tmp_path, legacy=legacy)
    sim.start()
    return sim


def test_absent_by_default_present_with_legacy(tmp_path):
    with _start(tmp_path, "--master", legacy=False) as sim:
        assert [n for n in LEGACY_NAMES if hasattr(sim.uwsgi, n)] == []
    with _start(tmp_path, "--master") as sim:
        assert [n for n in LEGACY_NAMES if not hasattr(sim.uwsgi, n)] == []
        assert hasattr(sim.uwsgi, "cache_get")  # the 2.0 names stay


def test_get_and_set_option(tmp_path):
    with _start(tmp_path, "--master", "--harakiri", "30", "--max-requests", "7") as sim:
        assert run(sim, "out = [uwsgi.get_option(i) for i in (0, 1, 2, 5, 3)]") == \
            [1, 7, 4, 30, 0]
        # ids are taken modulo 256, values stored as uint32, set_option returns the value
        assert run(sim, "out = [uwsgi.set_option(259, -1), uwsgi.get_option(3), "
                        "uwsgi.getoption(259), uwsgi.setoption(100, 5)]") == \
            [-1, 4294967295, 4294967295, 5]
        assert run(sim, "out = uwsgi.get_option(100)") == 5  # shared by every request
        assert run(sim, "out = uwsgi.get_option('1')") == \
            ["exc", "TypeError", "'str' object cannot be interpreted as an integer"]
        assert run(sim, "out = uwsgi.set_option(1)")[1] == "TypeError"
        assert run(sim, "out = uwsgi.get_option(id=1)") == \
            ["exc", "TypeError", "get_option() takes no keyword arguments"]


def test_set_option_changes_harakiri_live(tmp_path):
    extra = '''
import time
def slow(environ, start_response):
    if environ["PATH_INFO"] == "/set":
        uwsgi.set_option(5, 2)
    else:
        time.sleep(5)
    start_response("200 OK", [])
    return [b"done"]
'''
    (tmp_path / "app.py").write_text(EXEC_APP + extra)
    with Simulation(["--master", "--wsgi-file", "app.py", "--callable", "slow"],
                    app_dir=tmp_path, legacy=True) as sim:
        assert sim.get("/slow").status == 200  # no harakiri configured
        assert sim.get("/set").status == 200
        assert sim.inst.harakiri == 2
        killed = sim.get("/slow")
        assert killed.status is None  # harakiri 2 s now applies to the next request


def test_sorry_i_need_to_block_and_has_hook(tmp_path):
    with _start(tmp_path, "--master") as sim:
        assert run(sim, "out = [uwsgi.sorry_i_need_to_block(), uwsgi.has_hook(0)]") == \
            [True, None]
    with _start(tmp_path) as sim:  # no master
        assert run(sim, "out = uwsgi.sorry_i_need_to_block()") is None


def test_cluster_functions_without_a_cluster(tmp_path):
    with _start(tmp_path, "--master") as sim:
        out = run(sim, "out = [uwsgi.cluster(), uwsgi.cluster_nodes(), "
                       "uwsgi.cluster_node_name(), uwsgi.cluster_node_name('x'), "
                       "uwsgi.cluster_best_node()]")
        assert out == [None, [], b(sim.inst.hostname.encode()), None, None]


def test_fastfuncs_and_marshal_attributes(tmp_path):
    with _start(tmp_path, "--master") as sim:
        assert run(sim, "out = [len(uwsgi.fastfuncs), uwsgi.fastfuncs[26], "
                        "uwsgi.message_manager_marshal]") == [256, None, None]
        # the app fills them in, as with 1.x
        assert run(sim, "uwsgi.fastfuncs[3] = len; out = uwsgi.fastfuncs[3] is len") is True


def test_grunt_logs_and_says_why_it_is_not_simulated(tmp_path):
    with _start(tmp_path, "--master") as sim:
        with pytest.raises(simuwsgi.NotSimulatedError, match="Python stack"):
            sim.uwsgi.grunt()
        out = run(sim, "out = uwsgi.grunt()")
        assert out[:2] == ["exc", "NotSimulatedError"]
        assert any(line.startswith("spawning a grunt from worker 1 (pid :")
                   for line in sim.log)


def test_send_uwsgi_message_raises_not_simulated(tmp_path):
    with _start(tmp_path, "--master") as sim:
        with pytest.raises(simuwsgi.NotSimulatedError, match="0.9.6"):
            sim.uwsgi.send_uwsgi_message("127.0.0.1:3031", b"x")
        with pytest.raises(TypeError, match="takes no keyword arguments"):
            sim.uwsgi.send_uwsgi_message(node="x")


def test_messages_in_a_lone_simulation(tmp_path):
    # no network: a message to another node says so; the multicast reaches no one
    with _start(tmp_path, "--master") as sim:
        assert run(sim, "out = uwsgi.send_message(b'10.0.0.2:3031', 0, 0, b'x')")[:3] == \
            ["exc", "NotSimulatedError", "uwsgi.send_message() needs another node: run "
             "this node in a simuwsgi.Cluster (a lone Simulation has no network)"]
        assert run(sim, "out = uwsgi.send_multicast_message('239.0.0.1:1', b'x')") is True
        for call in ("uwsgi.connect('10.0.0.2:1')", "uwsgi.erlang_connect('e@h')",
                     "uwsgi.fcgi('10.0.0.2:9000', {})"):
            assert run(sim, f"out = {call}")[1] == "NotSimulatedError", call


def test_lone_simulation_joins_its_own_cluster(tmp_path):
    with _start(tmp_path, "--master", "--socket", ":3031", "--cluster", ":4000") as sim:
        sim.advance(1)
        assert run(sim, "out = [uwsgi.cluster(), uwsgi.cluster_nodes()]") == \
            [b(b":4000"), [b(b":3031")]]
        assert "joining multicast group" not in "\n".join(sim.log)  # broadcast


def test_cluster_from_an_ini_file_turns_the_master_on(tmp_path):
    (tmp_path / "app.py").write_text(EXEC_APP)
    (tmp_path / "node.ini").write_text("[uwsgi]\nsocket = 10.0.0.1:3031\n"
                                       "cluster = 239.0.0.1:9999\nwsgi-file = app.py\n")
    with Simulation(str(tmp_path / "node.ini"), app_dir=tmp_path, legacy=True) as sim:
        sim.advance(1)
        assert run(sim, "out = [uwsgi.cluster(), uwsgi.cluster_nodes()]") == \
            [b(b"239.0.0.1:9999"), [b(b"10.0.0.1:3031")]]
    with _start(tmp_path, "--socket", ":3031", "--cluster", ":4000") as sim:
        assert sim.inst.has_master  # 1.4 flags --cluster UWSGI_OPT_MASTER
