"""App code's own connections inside a cluster's node (``network._appsockets``) and the
half-closed connections of ``Cluster.connect`` (``network._sockets``)."""

from __future__ import annotations

import socket
import textwrap

import pytest

from simuwsgi import Cluster
from simuwsgi._errors import NotSimulatedError

APP = textwrap.dedent('''
    import http.client
    import socket
    import urllib.request

    def application(env, start_response):
        path = env["PATH_INFO"]
        query = env["QUERY_STRING"]
        try:
            if path == "/echo":
                out = b"got:" + env["wsgi.input"].read()
            elif path == "/urlopen":
                out = urllib.request.urlopen("http://" + query + "/echo", data=b"hello",
                                             timeout=5).read()
            elif path == "/httpclient":
                conn = http.client.HTTPConnection(query, timeout=5)
                conn.request("GET", "/echo")
                reply = conn.getresponse()
                out = b"%d " % reply.status + reply.read()
                conn.close()
            elif path == "/raw":
                host, port = query.split(":")
                sock = socket.create_connection((host, int(port)), timeout=3)
                sock.sendall(b"GET /echo HTTP/1.0\\r\\n\\r\\n")
                sock.shutdown(socket.SHUT_WR)
                out = b""
                while chunk := sock.recv(7):
                    out += chunk
                sock.close()
            elif path == "/rawsocket":
                sock = socket.socket()
                try:
                    sock.connect(("10.0.0.2", 8080))
                finally:
                    sock.close()
                out = b"connected"
            else:
                out = b"?"
        except Exception as exc:
            out = ("%s: %s" % (type(exc).__name__, exc)).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [out]
''')


@pytest.fixture
def pair(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    cluster = Cluster(app_dir=tmp_path)
    base = ["--master", "--wsgi-file", "app.py", "--socket-timeout", "2"]
    cluster.add("a", base + ["--http-socket", ":8080", "--processes", "2"],
                address="10.0.0.1")
    cluster.add("b", base + ["--http-socket", ":8080", "--socket", ":3031"],
                address="10.0.0.2")
    with cluster:
        yield cluster


def test_urlopen_and_http_client_reach_the_virtual_node(pair):
    assert pair["a"].get("/urlopen?10.0.0.2:8080").body == b"got:hello"
    assert pair["a"].get("/httpclient?b:8080").body == b"200 got:"
    assert any("POST /echo" in line for line in pair["b"].log)
    # itself: its other worker answers
    assert pair["a"].get("/urlopen?127.0.0.1:8080").body == b"got:hello"


def test_the_link_delays_an_app_connection(pair):
    pair.net.set_link("a", "b", latency=0.5)
    started = pair.kernel.now
    assert pair["a"].get("/raw?b:8080").body.endswith(b"got:")
    # SYN, SYN-ACK, the request, its reply: four crossings
    assert pair.kernel.now - started == pytest.approx(2.0, abs=0.01)


def test_connections_to_a_closed_port_or_across_a_partition_fail(pair):
    assert pair["a"].get("/raw?b:9999").body == b"ConnectionRefusedError: [Errno 111] " \
                                                b"Connection refused"
    pair.net.partition(["a"], ["b"])
    started = pair.kernel.now
    assert pair["a"].get("/raw?b:8080").body == b"TimeoutError: timed out"
    assert pair.kernel.now - started == pytest.approx(3.0, abs=0.01)


def test_a_connect_without_timeout_gives_up_after_the_syn_retries(pair):
    pair.net.partition(["a"], ["b"])
    started = pair.kernel.now
    with pytest.raises(TimeoutError) as caught:
        pair.connect("b:8080", via="a")
    assert caught.value.errno == 110 and caught.value.strerror == "Connection timed out"
    assert pair.kernel.now - started == pytest.approx(127.0)


def test_an_address_of_no_node_is_refused_not_sent_to_the_host(pair):
    body = pair["a"].get("/urlopen?192.0.2.7:80").body.decode()
    assert body.startswith("NotSimulatedError: socket.create_connection(('192.0.2.7', 80)) "
                           "from node 'a'")
    assert "Cluster(host_addresses=['192.0.2.7:80'])" in body
    body = pair["a"].get("/rawsocket").body.decode()
    assert body.startswith("NotSimulatedError: socket.connect(('10.0.0.2', 8080))")


def test_host_addresses_reach_the_host(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    server = socket.create_server(("127.0.0.2", 0))
    port = server.getsockname()[1]
    cluster = Cluster(app_dir=tmp_path, host_addresses=[f"127.0.0.2:{port}"])
    cluster.add("a", ["--master", "--wsgi-file", "app.py", "--http-socket", ":8080"])
    with cluster:
        server.settimeout(5)
        server.listen()
        # the host's server never answers; the app's connect reaches it and its read
        # times out in real time
        body = cluster["a"].get(f"/raw?127.0.0.2:{port}").body
    server.close()
    assert body == b"TimeoutError: timed out"


def test_outside_a_node_the_sockets_are_the_hosts(pair):
    server = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(server.getsockname(), timeout=2) as sock:
        assert isinstance(sock, socket.socket)
    server.close()


def _exchange(cluster, address, data, *, fin=True, timeout=10.0):
    sock = cluster.connect(address, timeout=timeout)
    sock.sendall(data)
    if fin:
        sock.shutdown(socket.SHUT_WR)
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    sock.close()
    return out


def test_a_fin_inside_the_uwsgi_packet_closes_it_with_uwsgis_line(pair):
    out = _exchange(pair, "b:3031", b"\x00\x30\x00\x00\x0e\x00REQ")
    assert out == b""
    assert pair["b"].log[-1] == ("uwsgi_proto_uwsgi_parser(): Resource temporarily "
                                 "unavailable [proto/uwsgi.c line 40]")
    out = _exchange(pair, "b:8080", b"GET / HTTP/1.1\r\nHo")
    assert out == b""
    assert pair["b"].log[-1] == "uwsgi_proto_http_parser() -> client closed connection"


def test_a_cut_body_fails_the_apps_read_and_the_reply_still_arrives(pair):
    out = _exchange(pair, "b:8080", b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 200 OK")
    assert out.endswith(b"OSError: error during read(0) on wsgi.input")
    assert ("[uwsgi-body-read] Error reading 7 bytes. Content-Length: 10 consumed: 3 "
            "left: 7 message: Client closed connection") in pair["b"].log


def test_a_whole_request_then_fin_is_answered(pair):
    out = _exchange(pair, "b:8080", b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert out.endswith(b"got:abc")


def test_a_silent_client_is_closed_after_the_socket_timeout(pair):
    started = pair.kernel.now
    out = _exchange(pair, "b:3031", b"\x00\x30\x00\x00", fin=False)
    assert out == b"" and pair.kernel.now - started == pytest.approx(2.0, abs=0.01)
    started = pair.kernel.now
    out = _exchange(pair, "b:8080", b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",
                    fin=False)
    assert out.endswith(b"OSError: timeout during read(0) on wsgi.input")
    assert pair.kernel.now - started == pytest.approx(2.0, abs=0.01)
    assert "[uwsgi-body-read] Timeout reading 8 bytes. Content-Length: 10 consumed: 2 " \
           "left: 8" in pair["b"].log


def test_a_closed_client_gets_nothing_more_and_reads_fail(pair):
    sock = pair.connect("b:8080", via="a")
    assert sock.getpeername() == ("10.0.0.2", 8080)
    assert sock.getsockname()[0] == "10.0.0.1" and sock.getsockname()[1] >= 32768
    sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
    sock.close()
    pair.advance(1)
    assert any("GET /echo" in line for line in pair["b"].log)  # served, reply dropped
    with pytest.raises(OSError, match="Bad file descriptor"):
        sock.recv(10)
    with pytest.raises(ConnectionRefusedError):
        pair.connect("b:9999")
    with pytest.raises(socket.gaierror):
        pair.connect("nosuchnode:80")


def test_a_fork_mode_node_is_refused_clearly(tmp_path):
    cluster = Cluster(app_dir=tmp_path)
    with pytest.raises(NotSimulatedError, match="mode='fork'"):
        cluster.add("a", ["--master"], mode="fork")
