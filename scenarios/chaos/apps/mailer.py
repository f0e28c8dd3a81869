"""Workers hand e-mails to a mule (``uwsgi.mule_msg``), which sends one a second.

The bug: the return value of ``mule_msg`` is ignored. When a burst fills the mule's
queue (a socket buffer of about 200 kB), uWSGI logs ``*** MULE MSG QUEUE IS FULL``,
``mule_msg`` returns False and the e-mail is gone. The fix (``--set fixed=1``): back off
and retry until the queue takes it.
"""

import time

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")


def application(environ, start_response):
    mail = environ.get("QUERY_STRING", "").encode() + b"|" + b"x" * 20000
    while not uwsgi.mule_msg(mail, 1) and FIXED:
        time.sleep(1)
    start_response("202 Accepted", [("Content-Type", "text/plain")])
    return [b"queued"]
