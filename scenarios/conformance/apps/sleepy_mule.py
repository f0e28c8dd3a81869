"""A mule signal handler that sleeps too long."""
import time

import uwsgi


def slow(num):
    time.sleep(3)


uwsgi.register_signal(50, "mule", slow)


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
