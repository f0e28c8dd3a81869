"""Legion on a cluster's virtual network (simuwsgi.subsystems.legion): election, hooks, quorum,
scrolls, death, skew; the SSL build switch."""

from __future__ import annotations

import pytest

from simuwsgi import Cluster, Simulation
from simuwsgi._errors import ConfigError, StartRefusedError

SECRET = "aes-128-cbc:secret"


def legion_opts(ip: str, valor: int, peers: list[str], *extra: str) -> list[str]:
    opts = ["--master", "--processes", "1", "--socket", ":3031",
            "--legion", f"lg {ip}:4000 {valor} {SECRET}", "--legion-scroll", f"lg s{valor}"]
    for peer in peers:
        opts += ["--legion-node", f"lg {peer}:4000"]
    return opts + list(extra)


def legion_cluster(valors: list[int], *extra: str, seed: int = 0) -> Cluster:
    cluster = Cluster(seed=seed, ssl=True)
    ips = [f"10.0.0.{i + 1}" for i in range(len(valors))]
    for i, valor in enumerate(valors):
        cluster.add(f"n{i}", legion_opts(ips[i], valor, [p for p in ips if p != ips[i]],
                                          *extra), address=ips[i], allow_no_app=True)
    return cluster


def lords(cluster: Cluster) -> list[str]:
    return [name for name, node in cluster.nodes.items()
            if not node.inst.stopped and node.inst.master.alive
            and node.uwsgi.i_am_the_lord("lg")]


def test_the_wheel_has_no_legion_and_an_ssl_build_has_it():
    with pytest.raises(ConfigError, match="unrecognized option '--legion'"):
        Simulation(["--legion", f"lg 127.0.0.1:4000 1 {SECRET}"])
    with Simulation(["--master"], allow_no_app=True) as sim:
        assert not hasattr(sim.uwsgi, "i_am_the_lord")
    with Simulation(["--master"], allow_no_app=True, ssl=True) as sim:
        assert sim.uwsgi.i_am_the_lord("lg") is False
        assert sim.uwsgi.lord_scroll("lg") is None and sim.uwsgi.scrolls("lg") is None
        with pytest.raises(TypeError):
            sim.uwsgi.i_am_the_lord()


def test_a_lone_node_elects_itself_after_its_second_announce():
    # observed on a real SSL build: announces at +3 and +6 s, Lord at +6 s
    opts = ["--legion", f"lg 127.0.0.1:4000 90 {SECRET}", "--legion-setup", "lg log:set up",
            "--legion-join", "lg log:joined", "--legion-death", "lg log:bye"]
    with Simulation(opts, allow_no_app=True, ssl=True) as sim:
        assert sim.inst.has_master  # --legion turns the master on (UWSGI_OPT_MASTER)
        sim.advance(5.9)
        assert sim.uwsgi.i_am_the_lord("lg") is False
        sim.advance(0.2)
        assert sim.uwsgi.i_am_the_lord("lg") is True
        assert sim.uwsgi.scrolls("lg") == [] and sim.uwsgi.lord_scroll("lg") is None
        sim.stop()
        lines = [line for _t, _p, line in sim.inst.log_lines]
    start = lines.index("[uwsgi-legion] (phase: setup legion: lg) calling log:set up")
    assert lines[start:start + 3] == ["[uwsgi-legion] (phase: setup legion: lg) calling "
                                      "log:set up", "set up", "legion manager thread enabled"]
    join = lines.index("joined")
    assert lines[join + 1].startswith("[uwsgi-legion] --- WE HAVE QUORUM FOR LEGION lg !!! "
                                      "(valor: 90 uuid: ")
    assert lines[join + 1].endswith(" votes: 1) ---")
    assert lines[join + 2:join + 5] == [
        "[uwsgi-legion] --- END OF QUORUM REPORT ---",
        "[uwsgi-legion] attempting to become the Lord of the Legion lg",
        "[uwsgi-legion] i am now the Lord of the Legion lg"]
    assert lines[-2:] == ["[uwsgi-legion] (phase: death legion: lg) calling log:bye", "bye"]


def test_a_stopped_lord_of_two_is_replaced_at_the_survivors_next_iteration():
    # the death announce ends the survivor's loop iteration ("continue"): it elects
    # itself at the next one, its next announce (within legion-freq), not at once
    with legion_cluster([90, 80]) as cluster:
        cluster.advance(15)
        cluster["n0"].stop()
        cluster.advance(0.5)
        assert lords(cluster) == []
        cluster.advance(2.6)
        assert lords(cluster) == ["n1"]


def test_the_highest_valor_rules_and_a_stopped_lord_is_replaced_within_a_round():
    with legion_cluster([80, 90, 70]) as cluster:
        cluster.advance(15)
        assert lords(cluster) == ["n1"]
        assert cluster["n0"].uwsgi.lord_scroll("lg") == b"s90"
        assert cluster["n0"].uwsgi.scrolls("lg") == [b"s80", b"s90", b"s70"]
        stopped = cluster.now
        cluster["n1"].stop()
        cluster.advance(0.5)
        assert lords(cluster) == []  # n0 waits for n2's next announce to agree
        cluster.advance(3)
        assert lords(cluster) == ["n0"]
        died = cluster.trace.select("legion.node_left", why="dead")
        assert {r.node for r in died} == {"n0", "n2"} and died[0].time == pytest.approx(stopped, abs=0.001)
        assert cluster["n2"].uwsgi.scrolls("lg") == [b"s70", b"s80"]
        assert any("announced its death to Legion lg" in line for line in cluster.log)


def test_a_killed_lord_is_replaced_only_after_the_tolerance():
    with legion_cluster([90, 80], "--legion-node-left", "lg log:gone") as cluster:
        cluster.advance(15)
        assert lords(cluster) == ["n0"]
        killed = cluster.now
        cluster["n0"].kill("master")
        cluster.advance(14)
        assert lords(cluster) == []  # n1 still votes for the silent n0
        cluster.advance(6)
        assert lords(cluster) == ["n1"]
        left = cluster["n1"].trace.select("legion.node_left")
        assert [r["why"] for r in left] == ["silent"] and 15 < left[0].time - killed <= 19
        assert "[n1] gone" in cluster.log


def test_no_lord_without_quorum_and_the_warning_once_a_minute():
    with legion_cluster([90, 80], "--legion-quorum", "lg 3") as cluster:
        cluster.advance(130)
        assert lords(cluster) == []
        warnings = [line for line in cluster.log if "no quorum" in line]
        assert warnings[0] == ("[n0] [uwsgi-legion] no quorum: only 2 vote(s) for Legion lg,"
                               " 3 needed to elect a Lord")
        assert len([w for w in warnings if w.startswith("[n0]")]) == 3  # t = 6, 66, 126


def test_a_node_whose_clock_is_behind_is_refused():
    with legion_cluster([90, 80]) as cluster:
        cluster.skew("n1", -61)
        cluster.advance(15)
        # n0 never hears n1 and rules alone; n1 hears n0 (the future is accepted) but
        # their checksums differ: no decision on n1
        assert lords(cluster) == ["n0"]
        assert not cluster["n1"].trace.select("legion.quorum")
        refused = cluster["n0"].trace.select("legion.skew")
        assert refused and all(r["name"] == "n1" for r in refused)
        assert ("[n0] [uwsgi-legion] untolerable packet received for Legion lg , check your "
                "clock !!!") in cluster.log


def test_a_partition_makes_two_lords_and_healing_leaves_one():
    with legion_cluster([90, 80, 70]) as cluster:
        cluster.advance(15)
        cluster.net.partition(["n0"], ["n1", "n2"])
        cluster.advance(25)
        assert lords(cluster) == ["n0", "n1"]
        cluster.net.heal()
        cluster.advance(10)
        assert lords(cluster) == ["n0"]
        assert [r.node for r in cluster.trace.select("legion.unlord")] == ["n1"]


def test_a_failing_lord_hook_with_death_on_lord_error_steps_aside():
    cluster = Cluster(ssl=True)
    cluster.add("n0", legion_opts("10.0.0.1", 90, ["10.0.0.2"], "--legion-lord", "lg nope:x",
                                  "--legion-death-on-lord-error", "30"),
                address="10.0.0.1", allow_no_app=True)
    cluster.add("n1", legion_opts("10.0.0.2", 80, ["10.0.0.1"], "--legion-lord",
                                  "lg signal:17"), address="10.0.0.2", allow_no_app=True)
    with cluster:
        cluster.advance(12)
        # n0's lord hook fails: it says it is dead and steps aside for 30 s; n1 rules
        assert lords(cluster) == ["n1"]
        assert ('[n0] [uwsgi-legion] suspending myself from Legion "lg" for 30 seconds'
                in cluster.log)
        assert '[n0] [uwsgi-legion] ERROR unable to find legion_action "nope"' in cluster.log
        assert cluster["n1"].trace.select("signal.route", num=17)
        # no announce while suspended: n1 drops the silent n0, which then comes back
        cluster.advance(40)
        assert lords(cluster) == ["n1"]  # n0 keeps saying dead: n1 ignores it


def test_a_reload_announces_death_and_comes_back_with_a_new_uuid():
    with legion_cluster([90, 80]) as cluster:
        cluster.advance(15)
        before = cluster["n0"].trace.select("legion.setup")[0]["uuid"]
        cluster["n0"].reload()
        cluster.advance(20)
        setups = cluster["n0"].trace.select("legion.setup")
        assert len(setups) == 2 and setups[1]["uuid"] != before
        assert cluster["n1"].trace.select("legion.node_left", why="dead")
        assert lords(cluster) == ["n0"]


@pytest.mark.parametrize("option, value, message", [
    ("--legion", "lg 1.2.3.4:5 9", "invalid legion syntax, must be <legion> <addr> "
                                   "<valor> <algo:secret>"),
    ("--legion", "lg 1.2.3.4:5 9 secret", "invalid legion syntax"),
    ("--legion", "lg 1.2.3.4:5 9 rot13:x", "[uwsgi-legion] unable to find algorithm/cipher "
                                           "rot13"),
    ("--legion-node", "other 1.2.3.4:5", "unknown legion: other"),
    ("--legion-node", "lg 1.2.3.4", "[uwsgi-legion] invalid udp address: 1.2.3.4"),
    ("--legion-quorum", "lg", "invalid legion-quorum syntax, must be <legion> <quorum>"),
    ("--legion-lord", "lg nocolon", "[uwsgi-legion] invalid lord action: nocolon"),
    ("--legion-lord", "zz log:x", "[uwsgi-legion] unknown legion: zz"),
])
def test_bad_legion_options_are_refused_with_uwsgis_words(option, value, message):
    opts = ["--master", "--legion", f"lg 127.0.0.1:4000 9 {SECRET}", option, value]
    if option == "--legion":
        opts = opts[:1] + opts[3:]
    with pytest.raises(StartRefusedError) as info:
        Simulation(opts, allow_no_app=True, ssl=True).start()
    assert message in str(info.value)


def test_the_election_is_deterministic_per_seed():
    digests = []
    for _ in range(2):
        with legion_cluster([90, 80, 70], seed=7) as cluster:
            cluster.net.set_link("n0", "n1", loss=0.3, jitter=0.2)
            cluster.advance(30)
            digests.append(cluster.digest())
    assert digests[0] == digests[1]


def test_the_ssl_options_left_out_are_named_in_the_warning():
    opts = ["--legion", f"lg 127.0.0.1:4000 9 {SECRET}", "--legion-attach-daemon",
            "lg sleep 100"]
    with Simulation(opts, allow_no_app=True, ssl=True) as sim:
        assert sim.trace.select("options.not_simulated")[0]["options"] == \
            ["legion-attach-daemon"]
    from simuwsgi.server.options_status import status

    assert status("legion-quorum").status == "simulated"


@pytest.mark.uwsgi_cluster(ssl=True, seed=3)
def test_the_cluster_fixture_takes_ssl(uwsgi_cluster):
    uwsgi_cluster.add("a", legion_opts("10.0.0.1", 9, []), address="10.0.0.1",
                      allow_no_app=True)
    uwsgi_cluster.advance(7)
    assert uwsgi_cluster["a"].uwsgi.i_am_the_lord("lg") is True


def test_a_legion_cron_runs_only_on_the_lord():
    with legion_cluster([90, 80], "--legion-cron", "lg -1 -1 -1 -1 -1 echo tick",
                        "--cron2", "minute=-1,legion=lg echo tock") as cluster:
        cluster.advance(185)
        fired = {name: [r["command"] for r in node.trace.select("cron.command")]
                 for name, node in cluster.nodes.items()}
        assert fired["n1"] == [] and fired["n0"].count("echo tick") >= 2
        assert fired["n0"].count("echo tock") == fired["n0"].count("echo tick")
        cluster["n0"].stop()
        cluster.advance(125)
        assert cluster["n1"].trace.select("cron.command", command="echo tick")
        assert ('[n0] [uwsgi-cron] command "echo tick" registered as cron task for legion '
                '"lg"') in cluster.log


def test_a_node_killed_whole_sends_no_death_announce():
    with legion_cluster([90, 80]) as cluster:
        cluster.advance(15)
        cluster.kill("n0")  # kill -9 of every process: no atexit, no "dead" announce
        cluster.advance(10)
        assert lords(cluster) == [] and not cluster["n1"].trace.select("legion.node_left")
        cluster.advance(10)
        assert lords(cluster) == ["n1"]


def test_the_stats_document_has_the_legions_of_an_ssl_build():
    from simuwsgi.server.stats import document

    with legion_cluster([90, 80]) as cluster:
        cluster.advance(10)
        docs = [document(node.inst)["legions"] for node in cluster.nodes.values()]
        lord, follower = docs[0][0], docs[1][0]
        assert lord["i_am_the_lord"] == cluster.clock.wall_offset + 6  # when it won
        assert follower["i_am_the_lord"] == 0
        assert lord["lord_uuid"] == follower["lord_uuid"] == lord["uuid"]
        assert lord["members"] == [{"name": "n1", "uuid": follower["uuid"], "valor": 80,
                                    "checksum": lord["checksum"],
                                    "last_seen": lord["members"][0]["last_seen"]}]
        assert lord["nodes"] == ["10.0.0.2:4000"] and lord["addr"] == "10.0.0.1:4000"
    with Simulation(["--master"], allow_no_app=True) as sim:
        assert "legions" not in document(sim.inst)  # the wheel: no SSL
