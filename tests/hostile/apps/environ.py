"""Hostile app: it changes the process environment, at import (as a Django ``wsgi.py``
does) and in requests, and the time zone with it."""
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("APP_NAME", "app") + ".settings")


def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/set":
        os.environ["SIMUWSGI_HOSTILE_SET"] = "1"
        os.putenv("SIMUWSGI_HOSTILE_PUTENV", "1")
        os.environ.pop("SIMUWSGI_HOSTILE_HOST", None)
        os.environ["TZ"] = "Asia/Tokyo"
        time.tzset()
    start_response("200 OK", [])
    return [f"{os.environ['DJANGO_SETTINGS_MODULE']} {time.tzname[0]}".encode()]
