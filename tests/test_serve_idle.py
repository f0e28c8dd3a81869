"""serve's accept loop waits for the next connection itself while trio is idle.

After a connection, ``UwsgiServer.serve`` waits in ``poll`` on its listener and trio's
epoll descriptor instead of going back through trio's run loop (``_idle_wait``). That
wait must give trio back everything trio would have done: a runnable task, a deadline
(the pacing loop's next virtual event), a descriptor another task waits on.
"""

from __future__ import annotations

import socket
import threading
import time

import trio
import trio.testing

from simuwsgi.net._server import _idle_wait
from simuwsgi.serve import ServedSimulation


def _listener() -> socket.socket:
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    return lsock


def _connect(lsock: socket.socket) -> socket.socket:
    client = socket.create_connection(lsock.getsockname())
    time.sleep(0.01)  # the handshake is done: the listener is readable
    return client


def test_the_wait_returns_for_the_listener_only_while_trio_has_nothing_to_do() -> None:
    seen: dict[str, object] = {}

    async def main() -> None:
        lsock = _listener()
        other_a, other_b = socket.socketpair()
        other_a.setblocking(False)
        idle = _idle_wait(lsock)
        assert idle is not None
        async with trio.open_nursery() as nursery:
            got = trio.Event()

            async def reader() -> None:  # another task waits on another descriptor
                await trio.lowlevel.wait_readable(other_a)
                got.set()

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()  # the reader is parked on its fd

            # a deadline: the wait ends then (were it missed, a connection 2 s later
            # ends the wait, and the test fails instead of hanging)
            late = threading.Timer(2.0, lambda: socket.create_connection(
                lsock.getsockname()).close())
            late.start()
            with trio.move_on_after(0.2):
                began = time.monotonic()
                seen["deadline"] = (idle(), time.monotonic() - began)
            late.cancel()

            client = _connect(lsock)
            seen["listener"] = idle()  # readable, and nothing else: True at once

            other_b.send(b"x")  # the other task's descriptor is ready: trio's turn
            seen["other"] = idle()
            await got.wait()

            nursery.start_soon(trio.sleep, 0)  # a runnable task: trio's turn
            seen["runnable"] = idle()
            lsock.accept()[0].close()
            client.close()
        for sock in (lsock, other_a, other_b):
            sock.close()

    trio.run(main)
    assert seen["listener"] is True
    assert seen["other"] is False
    assert seen["runnable"] is False
    returned, waited = seen["deadline"]  # type: ignore[misc]
    assert returned is False and 0.15 < waited < 1.0


async def _wait_of_a_listener() -> object:
    """What ``_idle_wait`` gives for a fresh listener in the running trio."""
    lsock = _listener()
    try:
        return _idle_wait(lsock)
    finally:
        lsock.close()


def test_a_test_clock_waits_through_trio() -> None:
    assert trio.run(_wait_of_a_listener, clock=trio.testing.MockClock()) is None


def test_timers_fire_on_time_while_serve_waits_for_connections(write_app) -> None:
    """Between two requests the loop waits in the accept loop's own poll: the pacing
    loop's deadline (the timer's next tick) still wakes it. The app's signal handler
    writes a real file, read while nothing else calls into the served thread."""
    app_dir = write_app("""
        import uwsgi
        def tick(num):
            with open(__file__.replace("app.py", "ticks.txt"), "a") as out:
                out.write("tick\\n")
        uwsgi.register_signal(1, "worker", tick)
        uwsgi.add_timer(1, 1)
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"hello"]
    """).parent
    with ServedSimulation(["--master", "--http-socket", "127.0.0.1:0", "--wsgi-file",
                           "app.py"], app_dir=app_dir) as served:
        port = int(served.address("http").rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.0 200")
        time.sleep(2.6)  # no request: only the pacing loop's deadlines run the timer
        ticks = (app_dir / "ticks.txt").read_text().splitlines()
    assert len(ticks) >= 2


def test_a_guest_run_waits_through_trio() -> None:
    """trio as a guest of another loop (asyncio here): its host waits on the
    descriptors, so the accept loop must not block in a wait of its own."""
    import asyncio

    async def host() -> object:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[object] = loop.create_future()
        trio.lowlevel.start_guest_run(
            _wait_of_a_listener, run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: done.set_result(outcome.unwrap()))
        return await done

    assert asyncio.run(host()) is None
