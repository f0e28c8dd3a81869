"""Hostile app: it changes interpreter-wide settings at import, as production apps do
(the collector off or frozen for copy-on-write, a deeper recursion limit, a strict
umask, a socket timeout, logging and warnings configured, its own excepthook)."""
import gc
import locale
import logging
import os
import resource
import socket
import sys
import threading
import warnings

gc.disable()
gc.set_threshold(5)
gc.freeze()
sys.setrecursionlimit(50_000)
sys.setswitchinterval(0.5)
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(640)
threading.excepthook = lambda args: None
os.umask(0o077)
os.nice(5)
resource.setrlimit(resource.RLIMIT_NOFILE,
                   (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
socket.setdefaulttimeout(3)
sys.excepthook = lambda *exc: None
warnings.simplefilter("error")
logging.basicConfig(format="app: %(message)s")  # (none under pytest: root has handlers)
logging.getLogger().setLevel(logging.DEBUG)
logging.getLogger("app.requests").addHandler(logging.StreamHandler())
locale.setlocale(locale.LC_ALL, "C")


def application(env, start_response):
    logging.getLogger("app.requests").info("a request")
    if env["PATH_INFO"] == "/setuid":
        try:
            os.setuid(65534)
        except Exception as exc:  # noqa: BLE001
            logging.getLogger("app.requests").info(f"{type(exc).__name__}: {exc}")
    start_response("200 OK", [])
    return [b"ok"]
