"""A cron job that runs twice across a DST change.

``add_cron(sig, 30, 2, -1, -1, -1)`` in Europe/Paris: on the last Sunday of October
02:30 comes twice, and uWSGI (which matches local time) runs the job twice; in March it
never runs. The fixed app schedules at 04:30. ``cron_slots_once`` is the check: it also
flags slots an NTP step skips (``simuwsgi explore ... --faults clock``).
"""

from simuwsgi.properties import cron_slots_once

OPTIONS = ["--master", "--processes", "1", "--cache2", "name=default,items=10",
           "--wsgi-file", "apps/nightly.py"]
START = "2026-10-24T12:00:00"
TZ = "Europe/Paris"
DURATION = "2d"


def check(sim):
    cron_slots_once(sim)
    assert sim.uwsgi.cache_num("nightly") == 2, "one run a night"
