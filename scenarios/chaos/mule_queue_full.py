"""A mule message lost when the mule's queue fills.

A burst of 40 e-mails of 20 kB reaches the mailer mule faster than it sends them; the
queue's socket buffer fills, ``uwsgi.mule_msg`` returns False and the app, which ignores
it, loses the e-mails. Fixed: retry until the queue accepts.
"""

OPTIONS = ["--master", "--processes", "2", "--mule=apps/mailer_mule.py", "--cache2",
           "name=default,items=10", "--wsgi-file", "apps/mailer.py"]
MAILS = 40
DURATION = 120


def timeline(sim):
    for i in range(MAILS):
        sim.submit("GET", f"/send?{i}", at=1 + i * 0.1)
    sim.run_until(DURATION)


def check(sim):
    sent = sim.uwsgi.cache_num("sent") or 0
    assert sent == MAILS, f"{sent} e-mails sent of {MAILS}"
