"""A billing run that only the Lord of the Legion "billing" does, every 10 s.

Each node registers a 10 s timer; its handler bills the current period when
``uwsgi.i_am_the_lord("billing")`` says this node rules. The bug: Legion's quorum
defaults to 0, so a node cut off from the others stays (or becomes) Lord on its side
of a partition while the others elect their own: two Lords, and each bills the same
periods. The fix is in the options, not here: ``--legion-quorum billing 2`` (a majority
of three), so the side with one node has no Lord.
"""

import time

import uwsgi

BILL = 41


def bill(signum):
    if uwsgi.i_am_the_lord("billing"):
        uwsgi.log(f"billed period {int(time.time()) // 10}")


uwsgi.register_signal(BILL, "worker", bill)
uwsgi.add_timer(BILL, 10)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
