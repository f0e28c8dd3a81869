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


def test_a_node_given_only_cluster_fetches_its_options(tmp_path):
    """1.4's cluster_setup: asks the group (99/0) and boots with a member's options."""
    (tmp_path / "app.py").write_text(EXEC_APP)
    cluster = Cluster(seed=0, app_dir=tmp_path)
    cluster.add("n1", ["--master", "--socket", ":3031", "--wsgi-file", "app.py",
                       "--processes", "3", "--cluster", GROUP], legacy=True)
    cluster.add("n2", ["--cluster", GROUP], legacy=True, address="10.0.0.2")
    with cluster:
        log = cluster["n2"].log
        assert log[:3] == [f"[uWSGI] joining multicast group: {GROUP}",
                           f"JOINED CLUSTER: {GROUP}",
                           f'asking "{GROUP}" uWSGI cluster for configuration data:']
        assert len(_lines(cluster, "n1", "requested configuration data, sending")) == 1
        assert len(_lines(cluster, "n2", "JOINED CLUSTER")) == 1  # joined once
        n2 = cluster["n2"]
        assert n2.inst.numproc == 3 and n2.inst.has_master
        assert run(n2, "out = uwsgi.cluster()") == b(GROUP.encode())
        cluster.advance(2)
        # it announced itself with the fetched socket
        assert _lines(cluster, "n1", "[uWSGI cluster] added node :3031")
    # nobody to ask: 1.4 asks forever, the simulation gives up after a minute
    alone = Cluster(seed=0, app_dir=tmp_path)
    alone.add("n1", ["--cluster", GROUP], legacy=True)
    with pytest.raises(StartRefusedError, match="answered 6 requests"):
        alone.start()
    assert len(_lines(alone, "n1", "asking")) == 6
    with pytest.raises(StartRefusedError, match="alone, waits forever"):
        Simulation(["--cluster", GROUP], app_dir=tmp_path, legacy=True).start()


def test_cluster_nodes_learns_the_nodes_without_announcing_itself(tmp_path):
    cluster = _cluster(tmp_path, 2)
    # a reader of the group: no socket, never announced, answers no configuration
    cluster.add("reader", ["--master", "--wsgi-file", "app.py", "--cluster", GROUP,
                           "--cluster-nodes", "1"], legacy=True, address="10.0.0.9")
    with cluster:
        cluster.advance(11)
        assert _lines(cluster, "reader", "JOINED") == [f"JOINED CLUSTER: {GROUP}"]
        assert sorted(_lines(cluster, "reader", "added node")) == \
            [f"[uWSGI cluster] added node 10.0.0.{i}:3031" for i in (1, 2)]
        assert sorted(run(cluster["n1"], "out = uwsgi.cluster_nodes()")) == \
            [b(f"10.0.0.{i}:3031".encode()) for i in (1, 2)]
        assert run(cluster["reader"], "out = uwsgi.cluster_best_node()") in \
            [b(f"10.0.0.{i}:3031".encode()) for i in (1, 2)]
        assert _lines(cluster, "n1", "new node available")[-1].endswith(": reader")
        cluster.send_udp(GROUP, 99)
        cluster.advance(1)
        assert not _lines(cluster, "reader", "requested configuration data")
        assert len(_lines(cluster, "n1", "requested configuration data")) == 1
    # 1.4's uwsgi_opt_true: "0", "no", "off", "false" turn it off
    (tmp_path / "app.py").write_text(EXEC_APP)
    with pytest.raises(StartRefusedError, match="at least a socket"):
        Simulation(["--master", "--wsgi-file", "app.py", "--cluster", GROUP,
                    "--cluster-nodes=off"], app_dir=tmp_path, legacy=True).start()
    with pytest.raises(ConfigError, match="unrecognized option '--cluster-nodes'"):
        Simulation(["--cluster-nodes", "1", "--wsgi-file", "app.py"], app_dir=tmp_path)
    with Simulation(["--master", "--cluster-nodes", "1", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, legacy=True) as sim:
        assert "[simuwsgi] --cluster-nodes without --cluster: no group to read, it does " \
               "nothing" in sim.log


def test_same_seed_same_trace(tmp_path):
    digests = []
    for _ in range(2):
        with _cluster(tmp_path, seed=7) as cluster:
            cluster.net.set_link("n1", "n2", loss=0.3, jitter=0.01)
            cluster.advance(60)
            run(cluster["n2"], "out = uwsgi.cluster_best_node()")
            digests.append(cluster.digest())
    assert digests[0] == digests[1]


RPC_APP = EXEC_APP + "\nuwsgi.register_rpc('hello', lambda *a: b'hi ' + b','.join(a))\n"


def _two(tmp_path, *extra: str) -> Cluster:
    (tmp_path / "app.py").write_text(RPC_APP)
    cluster = Cluster(seed=3, app_dir=tmp_path)
    for i in (1, 2):
        cluster.add(f"n{i}", ["--master", "--socket", f"10.0.0.{i}:3031", "--wsgi-file",
                              "app.py", *extra], legacy=True)
    return cluster


def test_send_message_dict_bytes_and_failures(tmp_path):
    with _two(tmp_path) as cluster:
        n1 = cluster["n1"]
        # a dict is a request's vars: the other node's WSGI app answers in raw HTTP
        out = run(n1, "out = list(uwsgi.send_message(b'10.0.0.2:3031', 0, 0, "
                      "{b'REQUEST_METHOD': b'GET', b'PATH_INFO': b'/', 'skipped': 1}))")
        assert out == [b(b"HTTP"), b(b"/1.0 200 OK\r\n\r\nnull")]
        # bytes go as they are: an RPC packet; the iterator yields the reply's payload
        assert run(n1, "out = list(uwsgi.send_message(b'10.0.0.2:3031', 173, 0, "
                       "b'\\x05\\x00hello\\x01\\x00x'))") == [b(b"hi x")]
        # anything else is marshalled: modifier1 33 is unknown to the node, which closes
        assert run(n1, "out = list(uwsgi.send_message(b'10.0.0.2:3031', 33, 0, [1]))") == []
        assert cluster["n2"].log[-1] == "-- unavailable modifier requested: 33 --"
        # refused at once, unreachable after the timeout (virtual seconds), bad inputs
        t = cluster.now
        assert run(n1, "out = uwsgi.send_message(b'10.0.0.2:4000', 173, 0, b'x')") is None
        assert cluster.now - t < 0.1
        assert run(n1, "out = uwsgi.send_message(b'10.0.0.9:3031', 173, 0, b'x', 2)") is None
        assert 2 <= cluster.now - t < 2.1
        assert run(n1, "out = uwsgi.send_message(b'n2:3031', 173, 0, b'x')") is None
        assert run(n1, "out = uwsgi.send_message('10.0.0.2:3031', 173, 0, b'x')") is None
        assert "is not bytes" in n1.log[-2]
        assert run(n1, "out = list(uwsgi.send_message(b'10.0.0.2:3031', 0, 0, {}))") == []
        assert "empty python dictionary" in n1.log
        assert run(n1, "out = uwsgi.send_message(3, 0, 0, b'x')")[:2] == \
            ["exc", "NotSimulatedError"]
        assert run(n1, "out = uwsgi.send_message(b'x', 0, 0)")[1] == "TypeError"


def test_send_message_iterator_reads_4096_bytes_at_a_time():
    from simuwsgi.network._messages import reply_chunks

    body = bytes(range(256)) * 20
    packet = bytes([173]) + len(body).to_bytes(2, "little") + b"\0" + body
    assert [len(c) for c in reply_chunks(packet)] == [4096, 1024]
    assert reply_chunks(b"HTTP/1.0 200 OK\r\n\r\n") == [b"HTTP", b"/1.0 200 OK\r\n\r\n"]
    assert reply_chunks(b"\0\0\0\0") == [] and reply_chunks(b"") == []


def test_send_multicast_message_reaches_the_group(tmp_path):
    with _cluster(tmp_path, 2) as cluster:
        cluster.advance(1)
        assert run(cluster["n1"], "out = uwsgi.send_multicast_message('239.0.0.1:9999', "
                                  "b'hi')") is True
        assert run(cluster["n1"], "out = uwsgi.send_multicast_message('/tmp/x', b'hi')") \
            is None
        cluster.advance(1)
        # every member's master got packet 74 and ignored it, as 1.4's did
        assert cluster.trace.count("cluster.recv", modifier1=74) == 2


def test_send_multi_message_times_out_or_spins_as_1_4(tmp_path):
    with _two(tmp_path, "--harakiri", "20") as cluster:
        n1 = cluster["n1"]
        assert run(n1, "out = uwsgi.send_multi_message((), 33, 0, 2)") == []
        assert run(n1, "out = uwsgi.send_multi_message(((b'10.0.0.2', 4000, 1),), 33, 0, "
                       "2)") is None  # refused
        assert run(n1, "out = uwsgi.send_multi_message([], 33, 0, 2)") is None
        assert run(n1, "out = uwsgi.send_multi_message(((b'10.0.0.2', 3031, 1),), 31, 0, "
                       "2)")[:2] == ["exc", "NotSimulatedError"]
        # the node closes at once: 1.4's reply loop (commented out) polls forever
        r = n1.request("POST", "/", body=b"out = uwsgi.send_multi_message(((b'10.0.0.2', "
                                          b"3031, [1]),), 33, 0, 2)")
        assert r.status is None and any("HARAKIRI" in line for line in n1.log)
    with _two(tmp_path, "--http-socket", ":8080") as cluster:
        # an HTTP port reads the packet as an unfinished request head: no answer
        t = cluster.now
        out = run(cluster["n1"], "out = uwsgi.send_multi_message(((b'10.0.0.2', 8080, "
                                 "[1]),), 33, 0, 2)")
        assert out is None and "timeout on multiple send !" in cluster["n1"].log
        assert 2 <= cluster.now - t < 2.1


def test_connect_async_send_message_and_recv_block(tmp_path):
    with _two(tmp_path) as cluster:
        n1 = cluster["n1"]
        code = ("fd = uwsgi.connect('10.0.0.2:3031')\n"
                "uwsgi.async_send_message(fd, 173, 0, b'\\x05\\x00hello\\x01\\x00x')\n"
                "out = [fd, uwsgi.recv_block(fd, 4, 2), uwsgi.recv(fd), uwsgi.recv(fd)]\n"
                "uwsgi.close(fd)\n"
                "out.append(uwsgi.recv(fd))")
        # the RPC reply: its header (recv_block reads exactly 4 bytes), then the payload
        assert run(n1, code) == [10, b(bytes([173, 4, 0, 0])), b(b"hi x"), None, None]
        assert "4 4 2" in n1.log  # 1.4's debug line before each read
        t = cluster.now
        assert run(n1, "out = [uwsgi.connect('10.0.0.2:4000'), uwsgi.connect('/tmp/s'), "
                       "uwsgi.connect('n2:3031'), uwsgi.connect('10.0.0.9:1', 1)]") == \
            [-1, -1, -1, -1]
        assert 1 <= cluster.now - t < 1.1
        # nothing sent: the block times out in virtual time
        code = "fd = uwsgi.connect('10.0.0.2:3031')\nout = uwsgi.recv_block(fd, 8, 3)"
        t = cluster.now
        assert run(n1, code) is None
        assert "error waiting for block data" in n1.log and 3 <= cluster.now - t < 3.1
        assert run(n1, "out = uwsgi.async_send_message(99, 0, 0, b'x')") is None
        assert n1.log[-2] == "write(): Bad file descriptor"


class _FakeStream:
    def __init__(self, *reads: bytes) -> None:
        self.reads = list(reads)
        self.eof = False
        self.rbuf = b""

    def read(self, size: int) -> bytes:
        return self.reads.pop(0) if self.reads else b""


def test_recv_frame_transcribes_1_4():
    from simuwsgi.network._sockets import FrameState, read_frame

    lines: list[str] = []
    stream = _FakeStream(b"\x00hello\xff")
    state = FrameState(64)
    assert read_frame(stream, state, lines.append, lambda: True) == b"hello"
    assert lines == ["read 7 bytes \x00hello\xff", "104 0", "101 1", "108 2", "108 3",
                     "111 4", "-1 5", "returning a frame"]
    # a frame split over two reads: the rest is read until the suffix; 1.4 copies one
    # byte past what the first read gave (the buffer's stale byte: 0 here)
    stream = _FakeStream(b"\x00ab", b"cd\xffzz")
    assert read_frame(stream, FrameState(64), [].append, lambda: True) == b"ab\x00cd"
    # EOF: an empty frame
    assert read_frame(_FakeStream(), FrameState(64), [].append, lambda: True) == b""


def test_fcgi_against_a_virtual_fastcgi_node(tmp_path):
    with _two(tmp_path) as cluster:
        seen = []

        def php(params, stdin):
            seen.append((params, stdin))
            if params.get(b"SCRIPT_NAME") == b"/boom.php":
                raise RuntimeError("boom")
            return b"Status: 200 OK\r\n\r\n" + b"x" * 70000

        cluster.add_fastcgi("php", php, address="10.0.0.5")
        n1 = cluster["n1"]
        out = run(n1, "out = [len(c) for c in uwsgi.fcgi('10.0.0.5:9000', "
                      "{b'SCRIPT_NAME': b'/a.php', 'skipped': b'x'})]")
        assert out == [65535, 70018 - 65535]  # STDOUT records of at most 65535 bytes
        assert seen == [({b"SCRIPT_NAME": b"/a.php"}, b"")]
        # an error in the app: a STDERR record, which ends the iteration
        assert run(n1, "out = list(uwsgi.fcgi('10.0.0.5:9000', "
                       "{b'SCRIPT_NAME': b'/boom.php'}))") == []
        # refused, not a dict, a descriptor for stdin that is not a connection
        assert run(n1, "out = [uwsgi.fcgi('10.0.0.5:9001', {}), "
                       "uwsgi.fcgi('10.0.0.5:9000', [])]") == [None, None]
        assert run(n1, "out = uwsgi.fcgi('10.0.0.5:9000', {}, 0, 10)")[:2] == \
            ["exc", "NotSimulatedError"]
        with pytest.raises(ValueError, match="already"):
            cluster.add_fastcgi("php2", php, address="10.0.0.5")


def test_fastcgi_records_round_trip():
    from simuwsgi.network._fastcgi import FastCgiHost, fcgi_param, fcgi_record, read_records

    host = FastCgiHost("php", lambda p, i: p[b"K" * 200] + i)
    request = fcgi_param(b"K" * 200, b"v") + fcgi_record(4, b"") + fcgi_record(5, b"in")
    assert host.respond(request) is None  # STDIN not ended yet
    reply = host.respond(request + fcgi_record(5, b""))
    assert [(k, c) for k, c in read_records(reply)] == \
        [(6, b"vin"), (6, b""), (3, bytes(8))]
    with pytest.raises(TypeError, match="callable"):
        FastCgiHost("x", None)


PROBE_APP = EXEC_APP + '''
uwsgi.register_signal(17, "worker", lambda n: None)
uwsgi.add_probe(17, "connect", "10.0.0.2:3031", 3, 2)
'''


def test_add_probe_signals_on_failure_and_recovery(tmp_path):
    (tmp_path / "app.py").write_text(EXEC_APP)
    (tmp_path / "probe.py").write_text(PROBE_APP)
    cluster = Cluster(seed=1, app_dir=tmp_path)
    cluster.add("n1", ["--master", "--socket", "10.0.0.1:3031", "--wsgi-file", "probe.py"],
                legacy=True)
    cluster.add("n2", ["--master", "--socket", "10.0.0.2:3031", "--wsgi-file", "app.py"],
                legacy=True)
    with cluster:
        cluster.advance(5)
        cluster.net.isolate("n2")
        cluster.advance(10)
        cluster.net.heal()
        cluster.advance(5)
        # a connect every 2 cycles; the one at 6 s is given up after 3 cycles (8 s): bad;
        # the one waiting on the cut link connects when it heals: good again
        assert [(r.time, r["bad"]) for r in cluster.trace.select("legacy.probe")] == \
            [(8.0, True), (pytest.approx(15.0002), False)]
        assert cluster["n1"].trace.count("signal.route", num=17) == 2
        n1 = cluster["n1"]
        assert run(n1, "out = uwsgi.add_probe(1, 'pg', 'dbname=x')") == \
            ["exc", "ValueError", "unable to add probe"]
        assert 'unable to find probe "pg" !!!' in n1.log


def test_erlang_functions_against_a_virtual_erlang_node(tmp_path):
    with _two(tmp_path) as cluster:
        erl = cluster.add_erlang("erl@host", processes={"echo": lambda m: ("ok", m)},
                                 functions={"math:add": lambda a, b: a + b})
        n1 = cluster["n1"]
        code = ("fd = uwsgi.erlang_connect('erl@host')\n"
                "out = [fd, uwsgi.erlang_send(fd, 'echo', [1, b'x']), uwsgi.erlang_recv(fd),"
                " uwsgi.erlang_sr(b'erl@host', b'echo', (None, 'atom')),"
                " uwsgi.erlang_rpc(fd, 'math', 'add', [2, 3])]\n"
                "uwsgi.erlang_close(fd)")
        # a list comes back with its tail (None), as 1.4's erl_to_py read it
        assert run(n1, code) == [10, 10, ["ok", [1, b(b"x"), None]], ["ok", [None, "atom"]],
                                 5]
        assert erl.received == [("echo", [1, b"x"]), ("echo", ([], "atom"))]
        assert run(n1, "out = uwsgi.erlang_rpc('erl@host', 'math', 'sub', [])") == \
            ["badrpc", ["EXIT", ["undef", [["math", "sub", None, None], None]]]]
        assert run(n1, "out = uwsgi.erlang_connect('nope@host')") == \
            ["exc", "ValueError", "Unable to connect to erlang node"]
        assert run(n1, "out = uwsgi.erlang_send('erl@host', 'echo', 1.5)") == \
            ["exc", "ValueError", "Unsupported object in Python->Erlang translation"]
        assert run(n1, "out = uwsgi.erlang_send(1.5, 'echo', 1)") == \
            ["exc", "ValueError", "invalid erlang node/descriptor"]
        assert run(n1, "uwsgi.erlang_lock(); uwsgi.erlang_unlock(); out = 1") == 1
        # the Erlang node is on the network: its link's latency is waited for
        cluster.net.set_link("n1", "erl@host", latency=0.5)
        t = cluster.now
        run(n1, "out = uwsgi.erlang_rpc('erl@host', 'math', 'add', [1, 1])")
        assert cluster.now - t > 1.99  # connect and call: two round trips
        with pytest.raises(ValueError, match="name@host"):
            cluster.add_erlang("nohost")
        with pytest.raises(TypeError, match="callables"):
            cluster.add_erlang("a@b", processes={"x": 1})


ERLANG_APP = EXEC_APP + '''
import sys
GOT = []

def on_message(message):
    GOT.append(message)
    uwsgi.cache_update("got", repr(GOT).encode())

def first(message):
    uwsgi.cache_update("first", repr(message).encode())

uwsgi.erlang_register_process("box", on_message)
uwsgi.erlang_register_process("dup", first)
uwsgi.erlang_register_process("dup", on_message)  # 1.4 keeps the first one
uwsgi.register_rpc("hello", lambda *args: b"hi " + b",".join(args))
uwsgi.erlang_register_process("quit", lambda message: sys.exit(1))
'''


def test_erlang_node_sends_and_calls_into_a_c_node(tmp_path):
    """1.4's ``--erlang``: the gateway runs registered processes and ``rex`` calls."""
    (tmp_path / "app.py").write_text(ERLANG_APP)
    cluster = Cluster(seed=0, app_dir=tmp_path)
    n1 = cluster.add("n1", ["--socket", "10.0.0.1:3031", "--wsgi-file", "app.py",
                            "--erlang", "uwsgi@n1", "--cache2", "name=default,items=10"],
                     legacy=True, hostname="web1.example.com")
    erl = cluster.add_erlang("erl@host")
    with cluster:
        assert "Erlang C-Node uwsgi@n1 registered on port" in "\n".join(n1.log)
        assert any("spawned uWSGI erlang c-node 1 (pid:" in line for line in n1.log)
        assert n1.inst.has_master  # --erlang turns the master on
        assert run(n1, "out = uwsgi.erlang_node") == b(b"uwsgi@n1")
        erl.send("uwsgi@n1", "box", ("hello", [104, 105], [1, b"x"], 2.5, []))
        erl.send("uwsgi@n1", "dup", "atom")
        erl.send("uwsgi@n1", "nobody", 1)
        # registered in a worker's memory: the gateway (forked from the master) has not
        assert run(n1, "out = uwsgi.erlang_register_process('late', len)") is None
        erl.send("uwsgi@n1", "late", 1)
        call = erl.rpc("uwsgi@n1", "hello", "world")
        empty = erl.rpc("uwsgi@n1", "hello", [1, 2, 300])  # a list: no argument
        missing = erl.rpc("uwsgi@n1", "nope", b"x")
        assert not call.done
        cluster.advance(1)
        assert run(n1, "out = [uwsgi.cache_get('got'), uwsgi.cache_get('first')]") == [
            b(repr([("hello", b"hi", [1, b"x", None], 2.5, None)]).encode()),
            b(b"'atom'")]
        assert (call.done, bytes(call.result)) == (True, b"hi world")
        assert bytes(empty.result) == b"hi "
        assert (missing.done, missing.result) == (True, [])
        log = "\n".join(n1.log)
        assert "[erlang] message From: erl@host To (process): box" in log
        assert "[erlang] message From: erl@host To (process): rex" in log
        assert log.count("!!! unregistered erlang process requested, dumping it !!!") == 2
        assert n1.trace.count("legacy.erlang_message") == 7
        # a registered process that exits ends the gateway: the master respawns it
        erl.send("uwsgi@n1", "quit", [])
        cluster.advance(2)
        erl.send("uwsgi@n1", "box", 7)
        cluster.advance(1)
        assert _lines(cluster, "n1", "c-node 1 (pid:")[-1].startswith(
            "respawned uWSGI erlang c-node 1")
        # a new copy of the master's memory: GOT starts empty again
        assert run(n1, "out = uwsgi.cache_get('got')") == b(b"[7]")
        with pytest.raises(ValueError, match="no C-node 'other@n1'"):
            erl.send("other@n1", "box", 1)
        with pytest.raises(ValueError, match="not an Erlang term"):
            erl.send("uwsgi@n1", "box", {1: 2})


def test_erlang_node_name_and_register_errors(tmp_path):
    (tmp_path / "app.py").write_text(EXEC_APP)
    sim = Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path, legacy=True,
                     hostname="web1.example.com")
    with sim:
        # without --erlang pyerl's node is ei_connect_init's "uwsgi" on the short host
        assert run(sim, "out = uwsgi.erlang_node") == b(b"uwsgi@web1")
        assert run(sim, "out = uwsgi.erlang_register_process('x' * 255, len)") == \
            ["exc", "ValueError", "Invalid erlang process name"]
        assert run(sim, "out = uwsgi.erlang_register_process('x' * 254, len)") is None
    with pytest.raises(ConfigError, match="unrecognized option '--erlang'"):
        Simulation(["--erlang", "n", "--wsgi-file", "app.py"], app_dir=tmp_path)
    sim = Simulation(["--wsgi-file", "app.py", "--erlang", "cn", "--erlang-cookie", "c"],
                     app_dir=tmp_path, legacy=True, hostname="web1.example.com")
    with sim:
        assert run(sim, "out = uwsgi.erlang_node") == b(b"cn@web1")
        assert "the cookie is not checked" in "\n".join(sim.log)
