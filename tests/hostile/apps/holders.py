"""Hostile app: module globals that cannot be copied (a lock, a socket, a thread
started at import) and datetimes that must pickle."""
import datetime
import pickle
import socket
import threading
import time

LOCK = threading.Lock()
SOCK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
COUNTER = {"n": 0}
TICKS = []
_stop = threading.Event()
THREAD = threading.Thread(target=lambda: _stop.wait(), daemon=True)
THREAD.start()


def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/pickle":
        now = datetime.datetime.now()
        back = pickle.loads(pickle.dumps(now))
        body = repr(back == now and type(back) is type(now)).encode()
    else:
        with LOCK:
            COUNTER["n"] += 1
            body = b"%d %s" % (COUNTER["n"], repr(SOCK.fileno() >= 0).encode())
    start_response("200 OK", [])
    return [body]
