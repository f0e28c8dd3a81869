"""An rb timer (@rbtimer(1)) while an external signal wakes the master at 2.5 s.

uWSGI 2.0 keeps rb-timer deadlines in whole seconds of ``uwsgi_now()``
(``core/master.c`` ``expire_rb_timeouts``: ``deadline = uwsgi_now() + value``, expired
when ``deadline <= uwsgi_now()``), and the master checks them when ``event_queue_wait``
times out *or after any event wakes it*. So the real firing instants follow the wall
clock's second boundaries: when the master is woken in the second where the next
deadline falls (here by signal 40 at 2.5 s, if the wall clock's fraction at start is
above ~0.5), the timer fires early. Observed on the real server: 3 firings by 2.8 s (0.99, 1.99,
2.50). The simulator models the same: a signal raised by a worker wakes the master loop,
whose iteration expires the due rb_timers.
"""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=20",
           "--env", "RB=1", "--wsgi-file", "apps/decorated.py"]


def timeline(sim):
    sim.advance(2.5)
    sim.signal(40)
    sim.advance(0.3)


def state(sim):
    return sim.get("/").body.decode()
