"""Remote cache and signal calls to a node's UNIX socket (``--socket /path``), real
against simulated: 2.0.30's clients take a path (no ``:``) as a UNIX socket
(``core/socket.c`` ``uwsgi_connect_do``); a simulated node reaches its own UNIX
sockets (``network._network``)."""

from __future__ import annotations

import textwrap

import pytest
from _waits import wait_for_lines

from simuwsgi import Cluster
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

pytestmark = pytest.mark.real

APP = textwrap.dedent('''
    import os
    import uwsgi

    def handled(num):
        uwsgi.log("handled signal %d" % num)

    uwsgi.register_signal(17, "workers", handled)
    SOCK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.sock")
    MISSING = SOCK + ".missing"

    def application(env, start_response):
        calls = [lambda: uwsgi.cache_set("k", b"v", 0, "c@" + SOCK),
                 lambda: uwsgi.cache_get("k", "c@" + SOCK),
                 lambda: uwsgi.cache_exists("k", "c@" + SOCK),
                 lambda: uwsgi.cache_get("k", "c@" + MISSING),
                 lambda: uwsgi.signal(17, SOCK),
                 lambda: uwsgi.signal(17, MISSING)]
        out = []
        for call in calls:
            try:
                out.append(repr(call()))
            except Exception as exc:
                out.append(type(exc).__name__ + ": " + str(exc).replace(SOCK, "SOCK"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["\\n".join(out).encode()]
''')


@requires_real_uwsgi
def test_cache_and_signal_over_a_unix_socket_match_real_uwsgi(tmp_path, real_uwsgi_factory):
    (tmp_path / "app.py").write_text(APP)
    options = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--cache2",
               "name=c,items=10", "--socket", str(tmp_path / "app.sock")]
    cluster = Cluster(app_dir=tmp_path)
    node = cluster.add("a", options + ["--http-socket", ":8080"])
    with cluster:
        sim_body = node.get("/").body.decode()
        cluster.advance(0.5)
        sim_handled = sum("handled signal 17" in line for line in node.log)
        sim_log = list(node.log)
    real = real_uwsgi_factory(options, app_dir=tmp_path)
    real_body = real.get("/").body.decode()
    wait_for_lines(real, "handled signal 17", sim_handled)  # the handlers run in workers
    real_handled = sum("handled signal 17" in line for line in real.log)
    assert sim_body == real_body
    assert real_body.splitlines() == [
        "True", "b'v'", "True", "None", "None",
        "OSError: unable to deliver signal 17 to node SOCK.missing"]
    assert sim_handled == real_handled == 2  # target "workers": both
    assert not any("sending signal" in line for line in real.log + sim_log)
