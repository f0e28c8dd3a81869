"""Memory: a closed simulation is freed whole, and a request leaves no cycle behind."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import pytest

from simuwsgi import Simulation

APP = """
import time
import uwsgi
calls = 0
def tick(num):
    global calls
    calls += 1
uwsgi.register_signal(1, "workers", tick)
uwsgi.add_timer(1, 10)
def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(10_000)  # still parked in the worker when the simulation closes
    start_response("200 OK", [])
    return [b"%d" % calls]
"""

MULE = """
import uwsgi
while True:
    uwsgi.mule_get_msg()
"""

OPTIONS = ["--master", "--processes", "4", "--mule=mule.py", "--wsgi-file", "app.py"]


def _an_hour(app_dir) -> list[weakref.ref]:
    """Run a virtual hour, close, and return weak references to what must be freed."""
    sim = Simulation(OPTIONS, app_dir=app_dir)
    sim.start()
    sim.advance(3600)
    assert sim.get("/").status == 200
    sim.submit("GET", "/slow")
    sim.advance(1)
    sim.close()
    worker = sim.process("worker1")
    copies = list(worker.context.modules.values())  # the worker's own app modules
    assert copies and all(type(m).__name__ == "module" for m in copies)
    return [weakref.ref(obj) for obj in
            (sim, sim.kernel, sim.inst, sim.trace, sim.inst.log_lines, worker, worker.greenlet,
             sim.process("mule1").greenlet, *copies)]


def test_a_closed_simulation_is_freed_with_its_parked_processes(write_app):
    write_app(APP)
    path = write_app(MULE, "mule.py")
    refs = _an_hour(path.parent)
    gc.collect()
    assert [ref() for ref in refs] == [None] * len(refs)


def test_simulations_one_after_another_do_not_grow_memory(write_app):
    write_app(APP)
    app_dir = write_app(MULE, "mule.py").parent
    _an_hour(app_dir)
    gc.collect()
    tracemalloc.start()
    try:
        _an_hour(app_dir)
        gc.collect()
        first, _peak = tracemalloc.get_traced_memory()
        for _ in range(6):
            _an_hour(app_dir)
        gc.collect()
        last, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last - first < 200_000, f"{(last - first) / 6:,.0f} bytes kept per simulation"


def test_a_request_leaves_no_reference_cycle(write_app):
    write_app(APP)
    app_dir = write_app(MULE, "mule.py").parent
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.get("/")  # warm-up: the first request creates lasting state
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(20):
                assert sim.get("/", headers={"X-A": "b"}, body=b"x").status == 200
            found = gc.collect()
        finally:
            if enabled:
                gc.enable()
    assert found == 0


def test_a_served_request_leaves_no_reference_cycle(write_app):
    """``serve``'s path too: a request whose reply the worker streamed to the client
    (its connection and the wire referred to each other) leaves nothing for the
    collector."""
    import socket

    from simuwsgi.protocol import encode_packet, encode_vars
    from simuwsgi.serve import ServedSimulation

    app_dir = write_app(APP).parent
    with ServedSimulation(["--master", "--processes", "2", "--socket", "127.0.0.1:0",
                           "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py"],
                          app_dir=app_dir) as served:
        def get(protocol: str) -> bytes:
            host, _, port = served.address(protocol).rpartition(":")
            with socket.create_connection((host, int(port))) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" if protocol == "http" else
                          encode_packet(0, 0, encode_vars([(b"REQUEST_METHOD", b"GET"),
                                                           (b"PATH_INFO", b"/")])))
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return data

        for protocol in ("http", "uwsgi"):  # warm-up: the first requests' lasting state
            get(protocol)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                assert get("http").startswith(b"HTTP/1.0 200")
                assert get("uwsgi").startswith(b"HTTP/1.0 200")
            gc.collect()
            kinds = sorted({type(o).__name__ for o in gc.garbage})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert kinds == []


def test_the_pytest_fixture_lets_go_of_each_simulation(pytester):
    pytester.makefile(".py", app=APP, mule=MULE)
    pytester.makepyfile(test_many="""
        import gc
        import weakref

        import pytest

        seen = []

        @pytest.mark.parametrize("n", range(5))
        @pytest.mark.uwsgi("--master", "--processes", "4", "--mule=mule.py",
                           "--wsgi-file", "app.py")
        def test_an_hour(uwsgi_sim, n):
            uwsgi_sim.advance(3600)
            uwsgi_sim.submit("GET", "/slow")
            uwsgi_sim.advance(1)
            seen.append(weakref.ref(uwsgi_sim))

        def test_factory(uwsgi_simulation):
            sim = uwsgi_simulation(["--master", "--wsgi-file", "app.py"])
            sim.advance(60)
            seen.append(weakref.ref(sim))

        def test_all_freed():
            gc.collect()
            assert len(seen) == 6 and [r() for r in seen] == [None] * 6
    """)
    pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=7)


def test_a_closed_simulation_keeps_its_trace_and_log_on_disk_and_readable(write_app):
    write_app(APP)
    app_dir = write_app(MULE, "mule.py").parent
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.advance(60)
        sim.get("/")
        digest, kinds, log = sim.trace.digest(), sim.trace.kinds(), list(sim.log)
    assert len(sim.trace._spool.tail) == 0 and len(sim.inst.log_lines.tail) == 0
    assert (sim.trace.digest(), sim.trace.kinds(), list(sim.log)) == (digest, kinds, log)
    assert sim.trace.count("signal.handler") == 4 * 6


def test_memory_does_not_grow_with_virtual_duration(write_app, monkeypatch):
    import simuwsgi._core._spool

    monkeypatch.setattr(simuwsgi._core._spool, "DEFAULT_LIMIT", 2000)  # spill early: a short run
    write_app(APP.replace("add_timer(1, 10)", "add_timer(1, 1)"))
    app_dir = write_app(MULE, "mule.py").parent

    def an_hour(sim: Simulation) -> None:
        for _ in range(6):
            base = sim.now
            requests = [sim.submit("GET", "/", at=base + 10 * i) for i in range(60)]
            sim.advance(600)
            assert requests[-1].done

    def traced(sim: Simulation) -> int:
        sim.trace.spill()  # the same (empty) tails each time: what remains is the index
        sim.inst.log_lines.spill()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        an_hour(sim)
        tracemalloc.start()
        try:
            an_hour(sim)
            first, records = traced(sim), len(sim.trace)
            an_hour(sim)
            an_hour(sim)
            last, added = traced(sim), len(sim.trace) - records
        finally:
            tracemalloc.stop()
    assert added > 2 * 3600 * 5  # two hours of timer firings and handler calls
    # ~300 bytes a record when every record stayed in memory; the chunks' index is left
    assert (last - first) / added < 0.5, f"{last - first:,} bytes for {added:,} records"


def test_serve_keeps_no_memory_per_request(write_app):
    import socket

    from simuwsgi.serve import ServedSimulation

    app_dir = write_app("""
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello"]
    """).parent

    def get(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data

    with ServedSimulation(["--master", "--http-socket", "127.0.0.1:0", "--wsgi-file",
                           "app.py"], app_dir=app_dir) as served:
        port = int(served.address("http").rpartition(":")[2])

        def traced() -> int:
            """What the simulator's own code holds (trio keeps a lazily pruned heap of
            stale deadlines, a bounded amount of its own)."""
            def spill() -> None:
                served.sim.trace.spill()
                served.sim.inst.log_lines.spill()
            served.call(spill)
            gc.collect()
            ours = tracemalloc.Filter(True, "*/simuwsgi/*")
            snapshot = tracemalloc.take_snapshot().filter_traces([ours])
            return sum(stat.size for stat in snapshot.statistics("filename"))

        # (warm: the chunk codec keeps its buffers at their high-water mark, a full
        # chunk's, for the next spill: bounded, and reached within these requests)
        for _ in range(1500):
            assert get(port).startswith(b"HTTP/1.0 200")
        tracemalloc.start()
        try:
            first = traced()
            for _ in range(1500):
                get(port)
            last = traced()
        finally:
            tracemalloc.stop()
    assert (last - first) / 1500 < 50, f"{last - first:,} bytes kept for 1,500 requests"


def test_the_young_threshold_is_raised_while_a_simulation_is_open(tmp_path):
    """From the first start to the last close (the test submits between runs too), and
    restored when a start fails."""
    from simuwsgi import AppLoadError
    from simuwsgi.server.hoststate import GC_GEN0 as _GC_GEN0

    (tmp_path / "app.py").write_text(APP)
    before = gc.get_threshold()
    raised = (max(before[0], _GC_GEN0), *before[1:])
    first = Simulation(["--master", "--processes", "1", "--wsgi-file", "app.py"],
                       app_dir=tmp_path)
    assert gc.get_threshold() == before  # not started yet
    first.start()
    assert gc.get_threshold() == raised
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as second:
        first.close()
        assert gc.get_threshold() == raised  # the second still holds it
        second.submit("GET", "/")
    assert gc.get_threshold() == before
    failing = Simulation(["--master", "--wsgi-file", "missing.py"], app_dir=tmp_path)
    with pytest.raises(AppLoadError):
        failing.start()
    assert failing.closed and gc.get_threshold() == before
