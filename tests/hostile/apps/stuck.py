"""Hostile app: code that never yields: a CPU loop, a blocking read on a real socket
nobody writes to, a join of a thread that never ends, one C call that holds the GIL;
and code that yields for ever: polling, in short sleeps, for something that never
comes."""
import re
import socket
import threading
import time


def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/spin":
        n = 0
        while True:
            n += 1
    if path == "/swallow":  # even Ctrl-C: it catches everything
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
    if path == "/socket":
        a, b = socket.socketpair()
        a.recv(1)
    if path == "/join":
        t = threading.Thread(target=threading.Event().wait, daemon=True)
        t.start()
        t.join()
    if path == "/poll":
        while not env.get("never"):
            time.sleep(0.01)
    in_c(path)
    start_response("200 OK", [])
    return [b"ok"]


def in_c(path):
    """Code stuck in one C call that holds the GIL: a regex backtracking (it checks
    for signals), a sum (it never does: about a second here)."""
    if path == "/regex":
        re.match(r"(a+)+$", "a" * 40 + "b")
    if path == "/sum":
        sum(range(30_000_000))
