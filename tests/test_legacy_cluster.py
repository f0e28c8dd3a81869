"""1.4's ``--cluster`` and its Python API on the virtual network, with ``legacy=True``
(``simuwsgi/network/_legacy.py``, ``simuwsgi/subsystems/legacy.py``)."""

from __future__ import annotations

import pytest
from _sim import EXEC_APP, b, run

from simuwsgi import Cluster, Simulation
from simuwsgi._errors import ConfigError, StartRefusedError

GROUP = "239.0.0.1:9999"


def _cluster(tmp_path, n: int = 3, *, seed: int = 0, group: str = GROUP) -> Cluster:
    (tmp_path / "app.py").write_text(EXEC_APP)
    cluster = Cluster(seed=seed, app_dir=tmp_path)
    for i in range(1, n + 1):
        cluster.add(f"n{i}", ["--master", "--socket", f"10.0.0.{i}:3031", "--wsgi-file",
                              "app.py", "--cluster", group], legacy=True)
    return cluster


def _lines(cluster: Cluster, node: str, text: str) -> list[str]:
    return [line for line in cluster[node].log if text in line]


def test_cluster_is_a_1_4_option_only_with_legacy(tmp_path):
    (tmp_path / "app.py").write_text(EXEC_APP)
    with pytest.raises(ConfigError, match="unrecognized option '--cluster'"):
        Simulation(["--cluster", GROUP, "--wsgi-file", "app.py"], app_dir=tmp_path)
    with pytest.raises(ConfigError, match="--cluster takes"):
        Simulation(["--cluster", "nowhere", "--wsgi-file", "app.py"], app_dir=tmp_path,
                   legacy=True)
    with pytest.raises(StartRefusedError, match="at least a socket"):
        Simulation({"master": True, "cluster": GROUP, "wsgi-file": "app.py"},
                   app_dir=tmp_path, legacy=True).start()


def test_join_logs_and_membership(tmp_path):
    with _cluster(tmp_path) as cluster:
        cluster.advance(11)  # every node announced itself again at its 10th cycle
        for name in ("n1", "n2", "n3"):
            node = cluster[name]
            assert _lines(cluster, name, "joining multicast group") == \
                [f"[uWSGI] joining multicast group: {GROUP}"]
            assert _lines(cluster, name, "JOINED") == [f"JOINED CLUSTER: {GROUP}"]
            added = _lines(cluster, name, "added node")
            assert sorted(added) == [f"[uWSGI cluster] added node 10.0.0.{i}:3031"
                                     for i in (1, 2, 3)]
            out = run(node, "out = [uwsgi.cluster(), sorted(uwsgi.cluster_nodes()), "
                            "uwsgi.cluster_node_name('10.0.0.2:3031'), "
                            "uwsgi.cluster_node_name('10.0.0.9:3031'), "
                            "uwsgi.cluster_node_name()]")
            assert out == [b(GROUP.encode()), [b(f"10.0.0.{i}:3031".encode())
                                               for i in (1, 2, 3)],
                           b(b"n2"), None, b(name.encode())]
        # a node hears the 73 announce of those that joined after it (and its own)
        new = _lines(cluster, "n1", "new node available")
        assert [line.split(" - ", 1)[1] for line in new] == \
            [f"[uWSGI cluster {GROUP}] new node available: n{i}" for i in (1, 2, 3)]
        assert len(_lines(cluster, "n3", "new node available")) == 1


def test_silent_node_is_dead_after_30_seconds(tmp_path):
    with _cluster(tmp_path) as cluster:
        cluster.advance(11)
        cluster.net.isolate("n3")
        cluster.advance(45)
        dead = _lines(cluster, "n1", "i assume it is dead")
        assert [line.split(" - ", 1)[1] for line in dead] == [
            "no presence announce in the last 30 seconds by node 10.0.0.3:3031, "
            "i assume it is dead."]
        assert sorted(run(cluster["n1"], "out = uwsgi.cluster_nodes()")) == \
            [b(b"10.0.0.1:3031"), b(b"10.0.0.2:3031")]
        cluster.net.heal()
        cluster.advance(11)  # its next announce adds it again
        assert len(run(cluster["n1"], "out = uwsgi.cluster_nodes()")) == 3


def test_best_node_rotates_least_recently_chosen(tmp_path):
    with _cluster(tmp_path) as cluster:
        cluster.advance(11)
        picks = []
        for _ in range(4):
            picks.append(run(cluster["n1"], "out = uwsgi.cluster_best_node()"))
            cluster.advance(1)  # stamps are whole seconds
        slots = [b(line.rpartition(" ")[2].encode())
                 for line in _lines(cluster, "n1", "added node")]
        assert picks == slots + slots[:1]
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                    legacy=True) as sim:
        assert run(sim, "out = uwsgi.cluster_best_node()") is None


def test_cluster_log_and_reload_datagrams(tmp_path):
    with _cluster(tmp_path, 2) as cluster:
        cluster.advance(2)
        cluster.send_udp(GROUP, 96, b"hello cluster")  # uwsgi --cluster-log
        cluster.advance(1)
        for name in ("n1", "n2"):
            assert [line.split(" - ", 1)[1]
                    for line in _lines(cluster, name, "hello")] == ["hello cluster"]
        cluster.send_udp(GROUP, 97)  # ignored by 1.4's manage_cluster_message
        cluster.advance(2)
        assert not _lines(cluster, "n1", "gracefully killing")
        cluster.send_udp(GROUP, 98)  # uwsgi --cluster-reload
        cluster.advance(5)
        for name in ("n1", "n2"):
            assert _lines(cluster, name, "...gracefully killing workers...")
            assert len(_lines(cluster, name, "JOINED CLUSTER")) == 2  # rejoined


def test_configuration_request_answered(tmp_path):
    with _cluster(tmp_path, 2) as cluster:
        cluster.advance(2)
        cluster.send_udp(GROUP, 99)
        cluster.advance(1)
        sent = _lines(cluster, "n1", "requested configuration data")
        assert len(sent) == 1 and sent[0].startswith("requested configuration data, "
                                                      "sending ")
        # each member answers to the group; members ignore the answers (modifier2 1)
        assert cluster.trace.count("cluster.send", modifier1=99, modifier2=1) == 2


def test_same_seed_same_trace(tmp_path):
    digests = []
    for _ in range(2):
        with _cluster(tmp_path, seed=7) as cluster:
            cluster.net.set_link("n1", "n2", loss=0.3, jitter=0.01)
            cluster.advance(60)
            run(cluster["n2"], "out = uwsgi.cluster_best_node()")
            digests.append(cluster.digest())
    assert digests[0] == digests[1]
