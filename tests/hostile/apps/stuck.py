"""Hostile app: code that never yields: a CPU loop, a blocking read on a real socket
nobody writes to, a join of a thread that never ends; and code that yields for ever:
polling, in short sleeps, for something that never comes."""
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
    start_response("200 OK", [])
    return [b"ok"]
