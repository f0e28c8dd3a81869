"""Hostile app: faulthandler in a worker (enable, a dump, a dump timer that ends the
process, a signal registered, os.abort with the handler on) - none of it may reach the
test process's own faulthandler, signals or life."""
import faulthandler
import os
import signal
import time


def application(env, start_response):
    path = env["PATH_INFO"]
    body = b"ok"
    if path == "/enable":
        faulthandler.enable()
        body = repr(faulthandler.is_enabled()).encode()
    elif path == "/disable":
        body = repr([faulthandler.disable(), faulthandler.disable(),
                     faulthandler.is_enabled()]).encode()
    elif path == "/dump":
        faulthandler.dump_traceback(all_threads=False)
    elif path == "/later":  # still running when the timer fires: dumped, then _exit(1)
        faulthandler.dump_traceback_later(1.5, exit=True)
        time.sleep(3)
    elif path == "/cancelled":
        faulthandler.dump_traceback_later(0.5, exit=True)
        faulthandler.cancel_dump_traceback_later()
        time.sleep(1)
    elif path == "/register":  # SIGUSR2: faulthandler's dump, not uWSGI's backtrace
        faulthandler.register(signal.SIGUSR2, all_threads=False)
        os.kill(os.getpid(), signal.SIGUSR2)
        body = repr([faulthandler.unregister(signal.SIGUSR2),
                     faulthandler.unregister(signal.SIGUSR2)]).encode()
    elif path == "/abort":
        faulthandler.enable(all_threads=False)
        os.abort()
    elif path == "/errors":
        errors = []
        for call in (lambda: faulthandler.dump_traceback_later(0),
                     lambda: faulthandler.register(signal.SIGSEGV),
                     lambda: faulthandler.register(signal.SIGKILL)):
            try:
                call()
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
        body = repr(errors).encode()
    start_response("200 OK", [])
    return [body]
