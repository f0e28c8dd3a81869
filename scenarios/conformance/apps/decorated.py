"""uwsgidecorators: @timer, @rbtimer (only with --env RB=1), @filemon, @signal, counted in
the cache."""
import json

import uwsgi
from uwsgidecorators import filemon, rbtimer, signal, timer


def bump(key):
    uwsgi.lock()
    try:
        uwsgi.cache_update(key, str(int(uwsgi.cache_get(key) or b"0") + 1).encode())
    finally:
        uwsgi.unlock()


@timer(1)
def every_second(num):
    bump("timer")


if uwsgi.opt.get("env") == b"RB=1":
    @rbtimer(1)
    def rb_every_second(num):
        bump("rbtimer")


@filemon("flag.txt")
def flag_changed(num):
    bump("filemon")


@signal(40, target="workers")
def sig40(num):
    bump("sig40")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({k: int(uwsgi.cache_get(k) or b"0")
                        for k in ("timer", "rbtimer", "filemon", "sig40")},
                       sort_keys=True).encode()]
