"""Hostile app: code that never yields: a CPU loop, a blocking read on a real socket
nobody writes to, a join of a thread that never ends."""
import socket
import threading


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
    start_response("200 OK", [])
    return [b"ok"]
