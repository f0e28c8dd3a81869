"""Transfers between two accounts kept in the cache, under ``uwsgi.lock()``.

The bug: the transfer debits, calls the (slow) fraud check, then credits, all under the
lock. Harakiri (or any kill -9) between the two writes leaves the money debited and
never credited: uWSGI's lock is released with the dead worker, the half-done transfer is
not undone. The fix (``--set fixed=1``): the slow call first, then one write of both
balances (one cache key), so no kill can split it.
"""

import json
import time

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")
TOTAL = 200


def balances():
    return json.loads(uwsgi.cache_get("accounts") or b'{"a": 100, "b": 100}')


def transfer(amount, fraud_check_seconds):
    if FIXED:
        time.sleep(fraud_check_seconds)
        uwsgi.lock()
        try:
            acc = balances()
            acc["a"] -= amount
            acc["b"] += amount
            uwsgi.cache_update("accounts", json.dumps(acc).encode())
        finally:
            uwsgi.unlock()
        return
    uwsgi.lock()
    try:
        acc = balances()
        acc["a"] -= amount
        uwsgi.cache_update("accounts", json.dumps(acc).encode())
        time.sleep(fraud_check_seconds)
        acc = balances()
        acc["b"] += amount
        uwsgi.cache_update("accounts", json.dumps(acc).encode())
    finally:
        uwsgi.unlock()


def application(environ, start_response):
    if environ["PATH_INFO"] == "/transfer":
        transfer(1, float(environ.get("QUERY_STRING") or 1))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(balances()).encode()]
