"""A shop that charges cards in the spooler: /pay?ORDER spools the charge, the spooler
charges (a counter in the cache stands for the card processor) and sends a receipt,
which takes two seconds.

The bug: the charge happens before the task is done. A spooler killed while it sends
the receipt keeps the spool file (only SPOOL_OK removes it), the respawned spooler runs
the task again, and the card is charged twice. The fix (``--set idempotent=1``): an
idempotency key, written in the cache (which outlives the spooler) with the charge.
"""

import time

import uwsgi

IDEMPOTENT = uwsgi.opt.get("idempotent") in (b"1", "1")


def charge(order):
    # the card processor: every call is a charge
    uwsgi.cache_inc(f"charges:{order}", 1)


def spooler(task):
    order = task[b"order"].decode()
    if IDEMPOTENT:
        # cache_set does not overwrite (uWSGI 2.0): it fails if an earlier run charged
        if uwsgi.cache_set(f"charged:{order}", b"1"):
            charge(order)
    else:
        charge(order)
    time.sleep(2)  # the receipt e-mail
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def application(environ, start_response):
    order = environ.get("QUERY_STRING") or "0"
    uwsgi.spool({b"order": order.encode()})
    start_response("202 Accepted", [("Content-Type", "text/plain")])
    return [b"charging order " + order.encode()]
